/**
 * NodeService on the public listener (mTLS with the node agent's own SVID): the entries under the agent,
 * X.509-SVIDs for them from CSRs whose keys the agent generated, and JWT-SVIDs. See entitlement.ts for the
 * one rule that bounds all of it.
 */
import type { CaManager } from '../../ca';
import { InvalidArgumentError } from '../../errors';
import {
  NodeServiceService,
  type BatchNewX509SvidRequest,
  type BatchNewX509SvidResponse,
  type FetchEntriesResponse,
  type NewJwtSvidRequest,
  type NewJwtSvidResponse,
  type NodeServiceServer,
} from '../../gen/lanyard/v1/node';
import type { Store } from '../../store/store';
import type { Entry } from '../../store/types';
import type { ParsedCsr } from '../../x509/csr';
import { MAX_X509_SVID_BATCH } from '../../internal/node-api-limits';
import { sha256 } from '../../internal/digest';
import { issueWorkloadSvid, svidToProto, svidTtlSeconds } from '../issuance/workload-svid';
import { auditedSharedTransaction } from '../audit/in-transaction';
import { newWorkloadContext, wholeSeconds } from '../issuance/workload-context';
import type { IssuancePolicySource } from '../../policy';
import { bundleToProto } from '../bundle/to-proto';
import { unaryHandler } from '../../internal/grpc-call';
import type { FederatedBundleSource } from '../federation/manager';
import type { ServiceRegistration } from '../grpc-server';
import type { Logger } from '../../internal/logging';
import type { PeerCall } from '../tls/peer-svid';
import { resolveCaller } from '../auth/resolve-caller';
import { entitledEntry, entriesUnder } from './entitlement';
import { MAX_JWT_SVID_TTL_SECONDS, type JwtAuthority } from './jwt-authority';

export const NODE_SERVICE_NAME = 'lanyard.v1.NodeService';
/** Provenance method of SVIDs an agent obtained for a local workload. */
export const NODE_AGENT_METHOD = 'node-agent';
/** JWT-SVIDs are bearer tokens: short-lived (JWT-SVID §5 advises short lifetimes). */
export const JWT_SVID_TTL_SECONDS = MAX_JWT_SVID_TTL_SECONDS;
const MAX_AUDIENCES = 16;
const MAX_AUDIENCE_CHARS = 512;

export interface NodeDeps {
  store: Store;
  ca: CaManager;
  jwt: JwtAuthority;
  defaultTtlSeconds: number;
  clock: () => Date;
  logger: Logger;
  /** Issuance policy (policy.files): narrows each workload SVID's scopes, as for Attest; absent = none. */
  policy?: IssuancePolicySource;
  /** The federated bundles the agent's entries name in federates_with; absent = none handed out. */
  federation?: FederatedBundleSource;
}

export function createNodeService(deps: NodeDeps): ServiceRegistration {
  const log = deps.logger.child({ service: NODE_SERVICE_NAME });
  const implementation: NodeServiceServer = {
    fetchEntries: unaryHandler('FetchEntries', log, (_req, call) => fetchEntries(deps, call), {
      okLevel: 'debug',
    }),
    batchNewX509Svid: unaryHandler('BatchNewX509Svid', log, (req, call) => batchNewX509Svid(deps, req, call)),
    newJwtSvid: unaryHandler('NewJwtSvid', log, (req, call) => newJwtSvid(deps, req, call)),
  };
  return { name: NODE_SERVICE_NAME, definition: NodeServiceService, implementation };
}

export async function fetchEntries(deps: NodeDeps, call: PeerCall): Promise<FetchEntriesResponse> {
  const now = deps.clock();
  const agent = await resolveCaller(deps, call, 'node', now);
  const entries = await entriesUnder(deps.store, agent.id, now);
  return {
    entries: entries.map((e) => ({
      id: e.id,
      spiffeId: e.spiffeId,
      selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
      revision: e.revision,
      x509SvidTtlSeconds: e.x509SvidTtlSeconds,
      federatesWith: [...(e.federatesWith ?? [])],
    })),
    bundle: bundleToProto(deps.ca.bundle()),
    federatedBundles: (deps.federation?.bundlesFor(entries.flatMap((e) => e.federatesWith ?? [])) ?? []).map(
      (b) => bundleToProto(b),
    ),
    // Every key verifiers need: the prepared one before it signs, the retired ones until their tokens expire.
    jwtAuthorities: deps.jwt.authorities().map((k) => ({
      keyId: k.keyId,
      publicKey: k.publicKey.export({ format: 'der', type: 'spki' }),
      expiresAt: k.expiresAt,
    })),
  };
}

export async function batchNewX509Svid(
  deps: NodeDeps,
  req: BatchNewX509SvidRequest,
  call: PeerCall,
): Promise<BatchNewX509SvidResponse> {
  const now = deps.clock();
  const agent = await resolveCaller(deps, call, 'node', now);
  if (req.params.length === 0 || req.params.length > MAX_X509_SVID_BATCH) {
    throw new InvalidArgumentError(`params: 1 to ${MAX_X509_SVID_BATCH} CSRs per call`);
  }
  // Everything is checked before anything is signed: one refused entry refuses the whole batch.
  const checked: { entry: Entry; csr: ParsedCsr }[] = [];
  for (const p of req.params) {
    const entry = await entitledEntry(deps.store, agent.id, p.entryId, now);
    checked.push({ entry, csr: await deps.ca.checkCsr(p.csr) });
  }
  const provenance = {
    method: NODE_AGENT_METHOD,
    // What the server relied on: the agent's SVID, which vouches for the workload on its node.
    evidenceSha256: sha256(agent.leaf.der),
    issuer: deps.ca.serverSvid().id.toString(),
    issuedAt: wholeSeconds(now),
  };
  const svids: ReturnType<typeof svidToProto>[] = [];
  let bundle = deps.ca.bundle();
  for (const { entry, csr } of checked) {
    const signed = await issueWorkloadSvid(deps.ca, {
      entry,
      publicKey: csr.publicKey,
      context: newWorkloadContext(entry, provenance, deps.policy),
      defaultTtlSeconds: deps.defaultTtlSeconds,
      now,
    });
    bundle = signed.bundle;
    svids.push(svidToProto(signed, entry));
  }
  // Every record of the batch in one group commit (one fsync shared with other issuance calls), not one each.
  const response = await auditedSharedTransaction(deps.store, () =>
    Promise.resolve({ svids, bundle: bundleToProto(bundle) }),
  );
  deps.logger.info({ agent: agent.id, entries: checked.map((c) => c.entry.id) }, 'node agent SVIDs issued');
  return response;
}

export async function newJwtSvid(
  deps: NodeDeps,
  req: NewJwtSvidRequest,
  call: PeerCall,
): Promise<NewJwtSvidResponse> {
  const now = deps.clock();
  const agent = await resolveCaller(deps, call, 'node', now);
  const audience = checkAudience(req.audience);
  const entry = await entitledEntry(deps.store, agent.id, req.entryId, now);
  const iat = Math.floor(now.getTime() / 1000);
  const ttl = Math.min(JWT_SVID_TTL_SECONDS, svidTtlSeconds(entry, deps.defaultTtlSeconds));
  const exp = iat + ttl;
  const token = deps.jwt.sign({ sub: entry.spiffeId, aud: audience, exp, iat });
  return { spiffeId: entry.spiffeId, token, expiresAt: new Date(exp * 1000) };
}

function checkAudience(audience: string[]): string[] {
  if (audience.length === 0) {
    throw new InvalidArgumentError('audience is required (JWT-SVID: aud must be set)');
  }
  if (audience.length > MAX_AUDIENCES) {
    throw new InvalidArgumentError(`at most ${MAX_AUDIENCES} audiences`);
  }
  for (const a of audience) {
    if (a === '' || a.length > MAX_AUDIENCE_CHARS) {
      throw new InvalidArgumentError(`each audience must be 1-${MAX_AUDIENCE_CHARS} characters`);
    }
  }
  return [...new Set(audience)];
}
