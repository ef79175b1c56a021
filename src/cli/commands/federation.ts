/** `lanyard federation ...`: relationships with foreign trust domains, over the server's admin socket. */
import type { Command } from 'commander';
import { BundleEndpointProfile, type FederationRelationship } from '../../gen/lanyard/v1/registration';
import { usageError } from '../cli-error';
import { parsePositiveInt, readInputFile } from '../input';
import { runAction } from '../run-action';
import { printResult, renderFields, renderTable } from '../output';
import {
  type AdminConnectionOptions,
  registerDeleteCommand,
  withAdminClient,
  withAdminOptions,
} from './server-admin';

interface RelationshipFlags {
  bundleEndpointUrl?: string;
  profile?: string;
  endpointSpiffeId?: string;
  webTrustRoots?: string;
  bootstrapBundle?: string;
}

const PROFILES: Record<string, BundleEndpointProfile> = {
  https_web: BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_WEB,
  https_spiffe: BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_SPIFFE,
};

export function registerFederationCommands(program: Command): void {
  const fed = program
    .command('federation')
    .description(
      'SPIFFE federation: the foreign trust domains whose bundles this server fetches and hands out',
    );

  withAdminOptions(
    relationshipFlags(
      fed
        .command('create')
        .description('federate with a foreign trust domain (its bundle is fetched at once, then polled)')
        .argument('<trust-domain>', 'the foreign trust domain, e.g. partner.example'),
    ),
  ).action(
    runAction(async (trustDomain: string, opts: RelationshipFlags & AdminConnectionOptions) => {
      if (opts.bundleEndpointUrl === undefined) throw usageError('--bundle-endpoint-url is required');
      if (opts.profile === undefined) throw usageError('--profile https_web|https_spiffe is required');
      const res = await withAdminClient(opts, (c) =>
        c.createFederationRelationship({ relationship: { ...fromFlags(opts), trustDomain } }),
      );
      print(res.relationship, opts);
    }),
  );

  withAdminOptions(
    fed.command('list').description('list federation relationships and their bundle state'),
  ).action(
    runAction(async (opts: AdminConnectionOptions) => {
      const res = await withAdminClient(opts, (c) => c.listFederationRelationships());
      printResult(opts, { relationships: res.relationships.map(toJson) }, () =>
        res.relationships.length === 0
          ? 'no federation relationships\n'
          : renderTable(
              ['TRUST DOMAIN', 'PROFILE', 'ENDPOINT', 'SEQUENCE', 'LAST ERROR'],
              res.relationships.map((r) => [
                r.trustDomain,
                profileName(r.profile),
                r.bundleEndpointUrl,
                r.state?.bundle !== undefined ? String(r.state.bundle.sequence) : '(none)',
                r.state?.lastError || '-',
              ]),
            ),
      );
    }),
  );

  withAdminOptions(
    fed
      .command('show')
      .description('show one relationship')
      .argument('<trust-domain>', 'foreign trust domain'),
  ).action(
    runAction(async (trustDomain: string, opts: AdminConnectionOptions) => {
      const res = await withAdminClient(opts, (c) => c.getFederationRelationship({ trustDomain }));
      print(res.relationship, opts);
    }),
  );

  withAdminOptions(
    relationshipFlags(
      fed
        .command('update')
        .description('change the fields given as flags; the others stay as they are')
        .argument('<trust-domain>', 'foreign trust domain')
        .option(
          '--clear <field>',
          'empty a field: endpoint_spiffe_id, web_trust_roots_pem (repeatable)',
          collect,
        )
        .option('--revision <n>', 'only update at this revision (default: the revision read just before)'),
    ),
  ).action(
    runAction(
      async (
        trustDomain: string,
        opts: RelationshipFlags & AdminConnectionOptions & { clear?: string[]; revision?: string },
      ) => {
        const mask = maskOf(opts);
        for (const c of opts.clear ?? []) {
          if (c !== 'endpoint_spiffe_id' && c !== 'web_trust_roots_pem') {
            throw usageError(`--clear must name endpoint_spiffe_id or web_trust_roots_pem, got "${c}"`);
          }
          mask.push(c);
        }
        if (mask.length === 0) throw usageError('nothing to update: give at least one field flag or --clear');
        const res = await withAdminClient(opts, async (c) => {
          const revision =
            opts.revision !== undefined
              ? parsePositiveInt(opts.revision, '--revision')
              : ((await c.getFederationRelationship({ trustDomain })).relationship?.revision ?? 0);
          return c.updateFederationRelationship({
            relationship: { ...fromFlags(opts), trustDomain, revision },
            updateMask: mask,
          });
        });
        print(res.relationship, opts);
      },
    ),
  );

  registerDeleteCommand(fed, {
    description: 'stop federating: the bundle is dropped (refused while entries federate with it)',
    argument: ['<trust-domain>', 'foreign trust domain'],
    noun: 'federation relationship',
    remove: (c, trustDomain, revision) => c.deleteFederationRelationship({ trustDomain, revision }),
  });
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

function relationshipFlags(cmd: Command): Command {
  return cmd
    .option('--bundle-endpoint-url <url>', 'https:// URL of the foreign bundle endpoint')
    .option('--profile <profile>', 'how the endpoint authenticates: https_web or https_spiffe')
    .option('--endpoint-spiffe-id <id>', 'https_spiffe: the SPIFFE ID the endpoint must present')
    .option(
      '--web-trust-roots <file>',
      "https_web: PEM roots to check the endpoint with instead of the system's",
    )
    .option(
      '--bootstrap-bundle <file>',
      'SPIFFE bundle (JSON) of the foreign domain to start from (required for https_spiffe)',
    );
}

function fromFlags(f: RelationshipFlags): Partial<FederationRelationship> {
  let profile = BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_UNSPECIFIED;
  if (f.profile !== undefined) {
    const p = PROFILES[f.profile];
    if (p === undefined) throw usageError(`--profile must be https_web or https_spiffe, got "${f.profile}"`);
    profile = p;
  }
  return {
    bundleEndpointUrl: f.bundleEndpointUrl ?? '',
    profile,
    endpointSpiffeId: f.endpointSpiffeId ?? '',
    webTrustRootsPem: f.webTrustRoots !== undefined ? readInputFile(f.webTrustRoots, 'web trust roots') : '',
    bootstrapBundleJson:
      f.bootstrapBundle !== undefined ? readInputFile(f.bootstrapBundle, 'bootstrap bundle') : '',
  };
}

function maskOf(f: RelationshipFlags): string[] {
  const given: [unknown, string][] = [
    [f.bundleEndpointUrl, 'bundle_endpoint_url'],
    [f.profile, 'profile'],
    [f.endpointSpiffeId, 'endpoint_spiffe_id'],
    [f.webTrustRoots, 'web_trust_roots_pem'],
    [f.bootstrapBundle, 'bootstrap_bundle_json'],
  ];
  return given.filter(([v]) => v !== undefined).map(([, p]) => p);
}

function profileName(p: BundleEndpointProfile): string {
  return p === BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_WEB
    ? 'https_web'
    : p === BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_SPIFFE
      ? 'https_spiffe'
      : 'unspecified';
}

/** Every field, always present, so scripts can rely on the shape. */
function toJson(r: FederationRelationship): Record<string, unknown> {
  const s = r.state;
  return {
    trustDomain: r.trustDomain,
    bundleEndpointUrl: r.bundleEndpointUrl,
    profile: profileName(r.profile),
    endpointSpiffeId: r.endpointSpiffeId || null,
    webTrustRootsPem: r.webTrustRootsPem || null,
    bundleSequence: s?.bundle !== undefined ? s.bundle.sequence : null,
    bundleRefreshHintSeconds: s?.bundle !== undefined ? s.bundle.refreshHintSeconds : null,
    bundleX509Authorities: s?.bundle?.x509Authorities.length ?? 0,
    lastSuccessAt: s?.lastSuccessAt?.toISOString() ?? null,
    lastAttemptAt: s?.lastAttemptAt?.toISOString() ?? null,
    lastError: s?.lastError || null,
    nextFetchAt: s?.nextFetchAt?.toISOString() ?? null,
    createdAt: r.createdAt?.toISOString() ?? null,
    updatedAt: r.updatedAt?.toISOString() ?? null,
    revision: r.revision,
  };
}

function print(r: FederationRelationship | undefined, opts: { json?: boolean }): void {
  if (r === undefined) throw new Error('the server answered without a relationship');
  const j = toJson(r);
  printResult(opts, j, () =>
    renderFields(Object.entries(j).map(([k, v]) => [k, v === null ? '(none)' : String(v)] as const)),
  );
}
