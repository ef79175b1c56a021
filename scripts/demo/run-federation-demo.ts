/**
 * `npm run demo -- --federation`: the delegation chain across two trust domains, on 127.0.0.1 in a temp dir. Two
 * servers (a.demo and b.demo) each with its own CA; B federates with A over https_spiffe; alice's planner in A
 * grants part of its session to B's tool-runner, B's server checks the planner's SVID with A's bundle and issues,
 * and B's service verifies alice -> A's planner -> B's tool-runner -> B's service over mutual TLS. Then a replayed
 * grant and a link B's CA forged are refused with their codes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { toSpiffeBundle } from '../../src/bundle/to-spiffe-bundle';
import { BundleSet } from '../../src/bundle';
import { grantAcross, redeemForeignGrant, startSession } from '../../src/client/handoff';
import { HandoffKey } from '../../src/client/handoff-keys';
import { ServerX509Source } from '../../src/client/server-x509-source';
import type { StaticX509Source } from '../../src/client/static-x509-source';
import { isLanyardError } from '../../src/errors';
import { BundleEndpointProfile } from '../../src/gen/lanyard/v1/registration';
import type { HopPeer } from '../../src/hop/peer';
import { createHopTlsServer, tlsClientOptions } from '../../src/hop/tls';
import { createLogger } from '../../src/internal/logging';
import { AdminClient } from '../../src/server/admin-client';
import { loadConfig } from '../../src/server/config';
import { type RunningServer, startServer } from '../../src/server/run';
import { authorizeId, verifyX509Svid } from '../../src/verify';
import { encodeAgentContext } from '../../src/x509/agent-context/codec';
import { DEFAULT_AGENT_CONTEXT_OID, readAgentContext } from '../../src/x509/agent-context/oid';
import { expect, out, step } from './run-demo';

const A = 'a.demo';
const B = 'b.demo';
const PLANNER = `spiffe://${A}/planner`;
const TOOL = `spiffe://${B}/tool-runner`;
const SVC = `spiffe://${B}/service`;

export async function runFederationDemo(options: { keep?: boolean } = {}): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-federation-demo-'));
  const cleanups: (() => Promise<unknown> | void)[] = [];
  out(`Lanyard federation demo: two trust domains, everything on 127.0.0.1, files in ${root}`);
  out();
  try {
    await run(root, cleanups);
    out();
    out('Demo passed: every step behaved as expected.');
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // Shutting down: a second failure would only hide the first.
      }
    }
    if (options.keep !== true) fs.rmSync(root, { recursive: true, force: true });
  }
}

async function server(
  root: string,
  td: string,
  cleanups: (() => Promise<unknown> | void)[],
): Promise<{ s: RunningServer; admin: AdminClient }> {
  const dir = path.join(root, td);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'lanyard.yaml'),
    [
      `trust_domain: ${td}`,
      'data_dir: data',
      'listen_address: 127.0.0.1:0',
      'federation:',
      '  bundle_endpoint:',
      '    listen_address: 127.0.0.1:0',
      '    profile: https_spiffe',
      '',
    ].join('\n'),
  );
  const log = fs.createWriteStream(path.join(dir, 'server.log'));
  cleanups.push(() => new Promise<void>((r) => log.end(r)));
  const config = loadConfig({ configFile: path.join(dir, 'lanyard.yaml'), env: {} });
  const s = await startServer(config, { logger: createLogger({ level: 'info', destination: log }) });
  cleanups.push(() => s.close());
  const admin = new AdminClient(s.config.adminSocketPath);
  cleanups.push(() => admin.close());
  return { s, admin };
}

async function workload(
  srv: { s: RunningServer; admin: AdminClient },
  spiffeId: string,
  fields: Record<string, unknown>,
  cleanups: (() => Promise<unknown> | void)[],
): Promise<ServerX509Source> {
  const { entry } = await srv.admin.createEntry({
    entry: { spiffeId, selectors: [{ type: 'unix', value: `name:${spiffeId}` }], ...fields },
  });
  const { token } = await srv.admin.createJoinToken({ entryId: entry!.id });
  const source = await ServerX509Source.start({
    server: srv.s.publicAddress,
    bundle: srv.s.ca.bundle(),
    attestorType: 'join_token',
    evidence: Buffer.from(token),
  });
  cleanups.push(() => source.close());
  return source;
}

async function run(root: string, cleanups: (() => Promise<unknown> | void)[]): Promise<void> {
  const a = await step(`server of trust domain ${A} started (its own CA, bundle endpoint https_spiffe)`, () =>
    server(root, A, cleanups),
  );
  const b = await step(`server of trust domain ${B} started (its own CA)`, () => server(root, B, cleanups));
  await step(`${B} federates with ${A} (endpoint SPIFFE ID pinned, ${A}'s bundle to bootstrap)`, async () => {
    await b.admin.createFederationRelationship({
      relationship: {
        trustDomain: A,
        bundleEndpointUrl: a.s.bundleEndpointUrl!,
        profile: BundleEndpointProfile.BUNDLE_ENDPOINT_PROFILE_HTTPS_SPIFFE,
        endpointSpiffeId: `spiffe://${A}/lanyard/server`,
        bootstrapBundleJson: JSON.stringify(toSpiffeBundle(a.s.ca.bundle())),
      },
    });
    expect(b.s.federation.bundle(A) !== undefined, `${B} to hold ${A}'s bundle`);
  });
  const [plannerWl, toolWl, svcWl] = await step(
    `registered ${PLANNER} (may delegate to ${TOOL}) and ${TOOL}, ${SVC} (federate with ${A}); attested`,
    async () =>
      Promise.all([
        workload(
          a,
          PLANNER,
          {
            allowedScopes: ['docs:read', 'tools:run'],
            allowedDelegates: [TOOL],
            canAssertPrincipal: true,
            maxDelegationDepth: 2,
          },
          cleanups,
        ),
        workload(
          b,
          TOOL,
          { federatesWith: [A], allowedScopes: ['docs:read', 'tools:run'], maxDelegationDepth: 1 },
          cleanups,
        ),
        workload(b, SVC, { federatesWith: [A] }, cleanups),
      ]),
  );
  const planner = await step(`alice's task session opened for the planner in ${A}`, async () => {
    const p = await startSession({
      server: a.s.publicAddress,
      source: plannerWl,
      principal: { evidence: { $case: 'assertedId', value: 'alice' } },
      intent: 'summarise the docs',
      scopes: ['docs:read', 'tools:run'],
    });
    cleanups.push(() => p.close());
    return p;
  });
  const key = HandoffKey.generate();
  const grant = await step(
    `the planner grants docs:read to ${TOOL} (registered with ${A}'s CreateGrant)`,
    () =>
      grantAcross({
        server: a.s.publicAddress,
        source: planner,
        childId: TOOL,
        childKey: key.id,
        scopes: ['docs:read'],
      }),
  );
  const tool: StaticX509Source = await step(
    `${B}'s server verified the planner's SVID with ${A}'s bundle and issued the tool-runner's delegated SVID`,
    async () => {
      const t = await redeemForeignGrant({ server: b.s.publicAddress, source: toolWl, key, grant });
      cleanups.push(() => t.close());
      return t;
    },
  );

  const reply = await step(
    `${B}'s service verified the whole chain over mutual TLS with ${A}'s and ${B}'s bundles`,
    async () => {
      const hop = createHopTlsServer(
        {
          source: svcWl,
          federatedTrustDomains: [A],
          revocation: svcWl.revocations,
          authorize: authorizeId(TOOL),
        },
        (socket, peer: HopPeer) => {
          const c = peer.context!;
          socket.end(
            JSON.stringify({
              principal: c.principal.id,
              chain: ['alice', ...c.delegation.map((l) => l.spiffeId), peer.spiffeId, SVC],
              scopes: c.scopes,
            }),
          );
        },
      );
      await new Promise<void>((r) => hop.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => hop.close(() => r())));
      const port = (hop.address() as { port: number }).port;
      const text = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ...tlsClientOptions({ source: tool, authorize: authorizeId(SVC) }),
        });
        let t = '';
        socket.on('data', (d: Buffer) => (t += d.toString()));
        socket.on('end', () => resolve(t));
        socket.on('error', reject);
      });
      return JSON.parse(text) as { principal: string; chain: string[]; scopes: string[] };
    },
  );
  out(`     chain: ${reply.chain.join(' → ')}`);
  out(`     principal ${reply.principal}, scopes ${reply.scopes.join(', ')}`);
  expect(
    reply.chain.join(' ') === ['alice', PLANNER, TOOL, SVC].join(' '),
    'the chain alice → planner → tool-runner → service',
  );

  await step('the same grant redeemed again is refused: ERR_GRANT_REPLAYED', async () => {
    const code = await refusalCode(
      redeemForeignGrant({ server: b.s.publicAddress, source: toolWl, key, grant }),
    );
    expect(code === 'ERR_GRANT_REPLAYED', `ERR_GRANT_REPLAYED, got ${code}`);
    out(`     refused: ${code}`);
  });
  await step(
    `an A link forged by ${B}'s CA (no proof from ${A}) is refused: ERR_CONTEXT_FOREIGN_DOMAIN`,
    async () => {
      const svid = tool.getX509Svid();
      const ctx = readAgentContext(svid.chain[0]!, DEFAULT_AGENT_CONTEXT_OID)!;
      delete ctx.delegation[0]!.parentChain;
      ctx.version = 1;
      ctx.scopes = ['docs:read', 'tools:run'];
      ctx.delegation[0]!.binding = { ...ctx.delegation[0]!.binding, scopes: ['docs:read', 'tools:run'] };
      const forged = await b.s.ca.signX509Svid({
        spiffeId: TOOL,
        publicKey: svid.privateKey,
        ttlSeconds: 60,
        agentContextDer: encodeAgentContext(ctx),
      });
      let code = 'accepted';
      try {
        verifyX509Svid(forged.chain, new BundleSet([a.s.ca.bundle(), b.s.ca.bundle()]), { cache: null });
      } catch (e) {
        code = isLanyardError(e) ? e.code : String(e);
      }
      expect(code === 'ERR_CONTEXT_FOREIGN_DOMAIN', `ERR_CONTEXT_FOREIGN_DOMAIN, got ${code}`);
      out(`     refused: ${code}`);
    },
  );
}

async function refusalCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isLanyardError(e) ? e.code : String(e);
  }
}
