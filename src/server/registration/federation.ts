/**
 * The federation half of the RegistrationService: relationships with foreign trust domains (create, get,
 * list, update, delete) and the check that an entry's federates_with names only domains that have one.
 * Every write is one store transaction with its audit record; the poller is told after the commit.
 */
import { NotFoundError, isLanyardError, FederationRelationshipMissingError } from '../../errors';
import { BundleEndpointProfile, type FederationRelationship } from '../../gen/lanyard/v1/registration';
import type {
  CreateFederationRelationshipRequest,
  DeleteFederationRelationshipRequest,
  GetFederationRelationshipRequest,
  UpdateFederationRelationshipRequest,
} from '../../gen/lanyard/v1/registration';
import { SpiffeId, TrustDomain } from '../../spiffe';
import type { Store, StoreOps } from '../../store/store';
import type {
  BundleEndpointProfile as StoreProfile,
  FederatedBundleRecord,
  FederatedBundleUpdate,
  FederationRelationshipFields,
  FederationRelationshipPatch,
  FederationRelationshipRecord,
} from '../../store/types';
import { readForeignBundle } from '../../federation/foreign-bundle';
import { decodeCompletePem } from '../../x509/pem';
import { ParsedCertificate } from '../../x509/certificate';
import { auditedTransaction } from '../audit/in-transaction';
import { bundleToProto } from '../bundle/to-proto';
import type { FederationManager } from '../federation/manager';
import { invalid, validateRevision, type ValidationContext } from './validate';

export const FEDERATION_MASK_PATHS = [
  'bundle_endpoint_url',
  'profile',
  'endpoint_spiffe_id',
  'web_trust_roots_pem',
  'bootstrap_bundle_json',
] as const;
type MaskPath = (typeof FEDERATION_MASK_PATHS)[number];

/** @throws FederationError(ERR_FEDERATION_RELATIONSHIP_MISSING) for a trust domain without a relationship. */
export async function requireRelationships(
  tx: StoreOps,
  field: string,
  names: readonly string[] | undefined,
): Promise<void> {
  for (const [i, name] of (names ?? []).entries()) {
    try {
      await tx.getFederationRelationship(name);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      throw new FederationRelationshipMissingError(
        `${field}[${i}]: no federation relationship with "${name}": create it first (lanyard federation create)`,
      );
    }
  }
}

export interface FederationHandlersDeps {
  store: Store;
  ctx: () => ValidationContext;
  /** Absent in tests that run the service alone: relationships are then stored but not polled. */
  federation?: FederationManager;
}

export function federationHandlers(deps: FederationHandlersDeps) {
  const { store } = deps;
  const toProto = async (r: FederationRelationshipRecord): Promise<FederationRelationship> =>
    relationshipToProto(r, await store.getFederatedBundle(r.trustDomain), deps.federation);

  return {
    async create(req: CreateFederationRelationshipRequest) {
      const c = deps.ctx();
      const { fields, bootstrap } = validateNewRelationship('relationship', req.relationship, c);
      const record = await auditedTransaction(store, async (tx) => ({
        relationship: relationshipToProto(
          await tx.createFederationRelationship(fields, bootstrap),
          bootstrap !== undefined
            ? { ...bootstrap, trustDomain: fields.trustDomain, updatedAt: c.now, lastError: '' }
            : undefined,
        ),
      }));
      deps.federation?.changed(fields.trustDomain);
      return record;
    },

    async get(req: GetFederationRelationshipRequest) {
      const td = trustDomainField('trust_domain', req.trustDomain, deps.ctx());
      return { relationship: await toProto(await store.getFederationRelationship(td)) };
    },

    async list() {
      const all = await store.listFederationRelationships();
      return { relationships: await Promise.all(all.map(toProto)) };
    },

    async update(req: UpdateFederationRelationshipRequest) {
      const r = req.relationship;
      if (r === undefined) throw invalid('relationship', 'required');
      const c = deps.ctx();
      const td = trustDomainField('relationship.trust_domain', r.trustDomain, c);
      const revision = validateRevision('relationship.revision', r.revision, true) ?? 0;
      const paths = maskPaths(req.updateMask ?? []);
      const response = await auditedTransaction(store, async (tx) => {
        const current = await tx.getFederationRelationship(td);
        const { patch, bootstrap } = validatePatch(r, paths, current);
        const updated = await tx.updateFederationRelationship(td, patch, revision);
        if (bootstrap !== undefined) await tx.putFederatedBundle(td, bootstrap, c.now);
        return {
          relationship: relationshipToProto(updated, await tx.getFederatedBundle(td), deps.federation),
        };
      });
      deps.federation?.changed(td);
      return response;
    },

    async delete(req: DeleteFederationRelationshipRequest) {
      const td = trustDomainField('trust_domain', req.trustDomain, deps.ctx());
      const revision = validateRevision('revision', req.revision, false);
      const response = await auditedTransaction(store, async (tx) => {
        await tx.deleteFederationRelationship(td, revision);
        return {};
      });
      deps.federation?.changed(td);
      return response;
    },
  };
}

export function relationshipToProto(
  r: FederationRelationshipRecord,
  bundle: FederatedBundleRecord | undefined,
  federation?: FederationManager,
): FederationRelationship {
  let bundleProto;
  if (bundle !== undefined) {
    try {
      bundleProto = bundleToProto(readForeignBundle(TrustDomain.parse(r.trustDomain), bundle.bundleJson));
    } catch {
      // Stored only after it parsed; a document that no longer parses is shown as absent, not guessed at.
      bundleProto = undefined;
    }
  }
  const next = federation?.nextFetchAt(r.trustDomain);
  return {
    trustDomain: r.trustDomain,
    bundleEndpointUrl: r.bundleEndpointUrl,
    profile:
      r.profile === 'https_web'
        ? BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_WEB
        : BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_SPIFFE,
    endpointSpiffeId: r.endpointSpiffeId ?? '',
    webTrustRootsPem: r.webTrustRootsPem ?? '',
    bootstrapBundleJson: '',
    state: {
      bundle: bundleProto,
      lastSuccessAt: bundle?.lastSuccessAt,
      lastAttemptAt: bundle?.lastAttemptAt,
      lastError: bundle?.lastError ?? '',
      nextFetchAt: next,
    },
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    revision: r.revision,
  };
}

function trustDomainField(field: string, value: string, ctx: ValidationContext): string {
  if (value === '') throw invalid(field, 'required');
  let td: TrustDomain;
  try {
    td = TrustDomain.parse(value);
  } catch (e) {
    throw invalid(field, e instanceof Error ? e.message : String(e));
  }
  if (td.equals(ctx.trustDomain)) {
    throw invalid(
      field,
      `"${value}" is this server's own trust domain: a server does not federate with itself`,
    );
  }
  return td.name;
}

function validateNewRelationship(
  field: string,
  r: FederationRelationship | undefined,
  ctx: ValidationContext,
): { fields: FederationRelationshipFields; bootstrap?: FederatedBundleUpdate } {
  if (r === undefined) throw invalid(field, 'required');
  const trustDomain = trustDomainField(`${field}.trust_domain`, r.trustDomain, ctx);
  const fields: FederationRelationshipFields = {
    trustDomain,
    bundleEndpointUrl: endpointUrl(`${field}.bundle_endpoint_url`, r.bundleEndpointUrl),
    profile: profileOf(`${field}.profile`, r.profile),
  };
  if (r.endpointSpiffeId !== '') fields.endpointSpiffeId = r.endpointSpiffeId;
  if (r.webTrustRootsPem !== '') fields.webTrustRootsPem = r.webTrustRootsPem;
  checkProfileFields(field, fields);
  const bootstrap =
    r.bootstrapBundleJson !== ''
      ? bootstrapOf(`${field}.bootstrap_bundle_json`, trustDomain, r.bootstrapBundleJson)
      : undefined;
  if (fields.profile === 'https_spiffe' && bootstrap === undefined) {
    throw invalid(
      `${field}.bootstrap_bundle_json`,
      "required for https_spiffe: the endpoint's SVID is checked with the foreign domain's bundle, so the first fetch needs one",
    );
  }
  return bootstrap !== undefined ? { fields, bootstrap } : { fields };
}

function validatePatch(
  r: FederationRelationship,
  paths: readonly MaskPath[],
  current: FederationRelationshipRecord,
): { patch: FederationRelationshipPatch; bootstrap?: FederatedBundleUpdate } {
  const patch: FederationRelationshipPatch = {};
  let bootstrap: FederatedBundleUpdate | undefined;
  const f = (n: string): string => `relationship.${n}`;
  for (const p of paths) {
    switch (p) {
      case 'bundle_endpoint_url':
        patch.bundleEndpointUrl = endpointUrl(f(p), r.bundleEndpointUrl);
        break;
      case 'profile':
        patch.profile = profileOf(f(p), r.profile);
        break;
      case 'endpoint_spiffe_id':
        patch.endpointSpiffeId = r.endpointSpiffeId === '' ? null : r.endpointSpiffeId;
        break;
      case 'web_trust_roots_pem':
        patch.webTrustRootsPem = r.webTrustRootsPem === '' ? null : r.webTrustRootsPem;
        break;
      case 'bootstrap_bundle_json':
        if (r.bootstrapBundleJson === '') throw invalid(f(p), 'named in the mask but empty');
        bootstrap = bootstrapOf(f(p), current.trustDomain, r.bootstrapBundleJson);
        break;
    }
  }
  // The combination is checked as it will be stored.
  const next: FederationRelationshipFields = { ...current };
  if (patch.bundleEndpointUrl !== undefined) next.bundleEndpointUrl = patch.bundleEndpointUrl;
  if (patch.profile !== undefined) next.profile = patch.profile;
  if (patch.endpointSpiffeId === null) delete next.endpointSpiffeId;
  else if (patch.endpointSpiffeId !== undefined) next.endpointSpiffeId = patch.endpointSpiffeId;
  if (patch.webTrustRootsPem === null) delete next.webTrustRootsPem;
  else if (patch.webTrustRootsPem !== undefined) next.webTrustRootsPem = patch.webTrustRootsPem;
  checkProfileFields('relationship', next);
  return bootstrap !== undefined ? { patch, bootstrap } : { patch };
}

function checkProfileFields(field: string, r: FederationRelationshipFields): void {
  if (r.profile === 'https_spiffe') {
    if (r.endpointSpiffeId === undefined) {
      throw invalid(
        `${field}.endpoint_spiffe_id`,
        'required for https_spiffe: the SPIFFE ID the endpoint must present',
      );
    }
    let id: SpiffeId;
    try {
      id = SpiffeId.parse(r.endpointSpiffeId);
    } catch (e) {
      throw invalid(`${field}.endpoint_spiffe_id`, e instanceof Error ? e.message : String(e));
    }
    // Only the foreign domain's own bundle authenticates its endpoint (see fetch-bundle.ts).
    if (id.trustDomain.name !== r.trustDomain) {
      throw invalid(
        `${field}.endpoint_spiffe_id`,
        `must be in trust domain ${r.trustDomain}, got ${id.trustDomain.name}`,
      );
    }
    if (r.webTrustRootsPem !== undefined) {
      throw invalid(
        `${field}.web_trust_roots_pem`,
        'only for https_web: https_spiffe checks the SVID with the bundle',
      );
    }
  } else {
    if (r.endpointSpiffeId !== undefined) {
      throw invalid(`${field}.endpoint_spiffe_id`, 'only for https_spiffe: https_web checks a DNS name');
    }
    if (r.webTrustRootsPem !== undefined) {
      try {
        const blocks = decodeCompletePem(r.webTrustRootsPem);
        if (blocks.length === 0) throw new Error('no certificate');
        for (const b of blocks) {
          if (b.label !== 'CERTIFICATE') throw new Error(`a ${b.label} block`);
          ParsedCertificate.fromDer(b.der);
        }
      } catch (e) {
        throw invalid(
          `${field}.web_trust_roots_pem`,
          `not PEM certificates: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }
  }
}

function endpointUrl(field: string, value: string): string {
  if (value === '') throw invalid(field, 'required');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(field, `${JSON.stringify(value.slice(0, 256))} is not a URL`);
  }
  if (url.protocol !== 'https:')
    throw invalid(field, 'must be an https:// URL (both endpoint profiles are TLS)');
  if (url.username !== '' || url.password !== '') throw invalid(field, 'must not carry credentials');
  if (url.hash !== '') throw invalid(field, 'must not have a fragment');
  return url.href;
}

function profileOf(field: string, p: BundleEndpointProfile): StoreProfile {
  switch (p) {
    case BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_WEB:
      return 'https_web';
    case BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_SPIFFE:
      return 'https_spiffe';
    default:
      throw invalid(
        field,
        'required: BUNDLE_ENDPOINT_PROFILE_HTTPS_WEB or BUNDLE_ENDPOINT_PROFILE_HTTPS_SPIFFE',
      );
  }
}

function bootstrapOf(field: string, trustDomain: string, json: string): FederatedBundleUpdate {
  try {
    const bundle = readForeignBundle(TrustDomain.parse(trustDomain), json);
    return {
      bundleJson: json,
      ...(bundle.sequence !== undefined ? { sequence: bundle.sequence } : {}),
      ...(bundle.refreshHint !== undefined ? { refreshHintSeconds: bundle.refreshHint } : {}),
      fetched: false,
    };
  } catch (e) {
    if (isLanyardError(e)) throw invalid(field, e.message);
    throw e;
  }
}

function maskPaths(mask: readonly string[]): MaskPath[] {
  if (mask.length === 0) {
    throw invalid('update_mask', `required: one or more of ${FEDERATION_MASK_PATHS.join(', ')}, or "*"`);
  }
  if (mask.includes('*')) {
    if (mask.length > 1) throw invalid('update_mask', '"*" must be the only path');
    return FEDERATION_MASK_PATHS.filter((p) => p !== 'bootstrap_bundle_json');
  }
  return mask.map((p, i) => {
    const snake = p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    if ((FEDERATION_MASK_PATHS as readonly string[]).includes(snake)) return snake as MaskPath;
    throw invalid(
      `update_mask.paths[${i}]`,
      `${JSON.stringify(p)} is not one of ${FEDERATION_MASK_PATHS.join(', ')}`,
    );
  });
}
