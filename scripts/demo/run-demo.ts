/**
 * The demo behind `npm run demo` (scripts/demo.ts): Lanyard end to end on one machine, everything on 127.0.0.1 in a
 * temp dir. It lives in scripts/, not src/, so it is not part of the built package.
 *
 *   a server (SQLite, its own CA, a local OIDC issuer trusted for principals, the Cedar policies of
 *   examples/policy/) -> four entries -> each workload attests with a join token -> the planner opens a task
 *   session for alice (an ID token signed by a locally generated issuer key) -> delegates to the tool-runner
 *   (which generated its key first: the planner's grant names it) -> the tool-runner asks service A for a key
 *   over mutual TLS (gRPC), grants to it and calls A with the grant beside the call -> A redeems it
 *   (src/hop/handoff.ts) and calls service B over https with the delegated SVID -> B's handler prints the
 *   chain it reconstructed from the SVID and the Cedar decision -> the planner ends the session -> the next
 *   call to A is refused -> A and B ship their hop-decision chains to the server, and `lanyard audit verify
 *   --server` and `lanyard audit trace` print the audit trail of the run.
 *
 * Every step checks what it got; the script exits 0 only when every step behaved as expected, 1 otherwise,
 * naming the step. Nothing but loopback traffic; the temp dir is removed at the end (--keep keeps it).
 */
import { execFile } from 'node:child_process';
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { AuditPublicKey, FileAuditLog, parseChainText, verifyAuditChain } from '../../src/audit';
import { auditHopDecisions } from '../../src/hop/audit';
import { X509Bundle } from '../../src/bundle';
import { isLanyardError } from '../../src/errors';
import { grpcStatusOf } from '../../src/internal/grpc-status-map';
import { grantFor, redeemGrant, startSession } from '../../src/client/handoff';
import { HandoffKey, HandoffKeys } from '../../src/client/handoff-keys';
import { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials } from '../../src/client/server-credentials';
import type { X509Svid } from '../../src/svid/x509-svid';
import { ServerX509Source } from '../../src/client/server-x509-source';
import { SessionServiceClient } from '../../src/gen/lanyard/v1/session';
import type { HopDecision } from '../../src/hop/decision';
import {
  hopPeerOf,
  HOP_CHANNEL_OPTIONS,
  HOP_ERROR_CODE_METADATA_KEY,
  hopChannelCredentials,
  hopServerCredentials,
  hopService,
} from '../../src/hop/grpc';
import {
  addHandoffService,
  grantForPeer,
  HANDOFF_GRANT_HEADER,
  redeemFromCaller,
} from '../../src/hop/handoff';
import type { HopPeer } from '../../src/hop/peer';
import { createHopHttpsServer, HopHttpsAgent } from '../../src/hop/tls';
import { cedarHopPolicy, PolicyEngine, type CedarDecision } from '../../src/policy';
import { AdminClient } from '../../src/server/admin-client';
import { loadConfig } from '../../src/server/config';
import { createLogger } from '../../src/internal/logging';
import { type RunningServer, startServer } from '../../src/server/run';
import { TrustDomain } from '../../src/spiffe';
import { authorizeId } from '../../src/verify';
import type { AgentContext } from '../../src/x509/agent-context/types';

const execFileAsync = promisify(execFile);
const TD = 'lanyard.local';
const IDP = 'https://idp.demo.local';
/** The Cedar policies the server and both services load unless the caller names others. */
export const DEMO_POLICY_DIR = path.join(__dirname, '..', '..', 'examples', 'policy');
/** The CLI the demo runs as a person would. */
const LANYARD_BIN = path.join(__dirname, '..', '..', 'bin', 'lanyard.js');
const ID = {
  planner: `spiffe://${TD}/agents/planner`,
  toolRunner: `spiffe://${TD}/agents/tool-runner`,
  serviceA: `spiffe://${TD}/services/service-a`,
  serviceB: `spiffe://${TD}/services/service-b`,
} as const;
/** The one RPC of service A. JSON over gRPC keeps the demo free of generated code; the hop is real gRPC. */
const RUN_METHOD = '/lanyard.demo.ToolService/Run';
const B_ROUTE = '/tickets/summary';

/** The grant A redeems to act for its caller travels beside it, in the `lanyard-grant` metadata key. */
interface RunRequest {
  task: string;
}
interface RunReply {
  summary: string;
  chain: string[];
}

export interface DemoOptions {
  /** Cedar policies for the server and both services instead of examples/policy/ (to watch a refusal). */
  policyDir?: string;
  /** Keep the temp dir (data, keys, audit files) for a look afterwards. */
  keep?: boolean;
}

/** A failed expectation: the step's name and what went wrong. */
export class DemoFailure extends Error {}

export const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

export async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    const result = await fn();
    out(` ✔ ${name}`);
    return result;
  } catch (e) {
    out(` ✘ ${name}`);
    throw new DemoFailure(`${name}: ${describe(e)}`, { cause: e });
  }
}

/** A gRPC refusal with its status and stable Lanyard code; anything else by its message. */
function describe(e: unknown): string {
  const err = e as Partial<grpc.ServiceError>;
  if (typeof err.code === 'number' && err.metadata instanceof grpc.Metadata) {
    const code = err.metadata.get(HOP_ERROR_CODE_METADATA_KEY)[0];
    return `${grpc.status[err.code]} ${code !== undefined ? `${String(code)}: ` : ''}${err.details ?? ''}`;
  }
  if (isLanyardError(e)) return `${grpc.status[grpcStatusOf(e)]} ${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

export function expect(condition: boolean, what: string): void {
  if (!condition) throw new Error(`expected ${what}`);
}

function short(id: string): string {
  return id.length > 14 ? `${id.slice(0, 14)}…` : id;
}

/** The last path segment of a SPIFFE ID: how the chain is printed. */
function nameOf(spiffeId: string): string {
  return spiffeId.slice(spiffeId.lastIndexOf('/') + 1);
}

/** alice -> planner (session …) -> tool-runner (session …) -> service-a, from the SVID alone. */
function chainOf(peerId: string, c: Readonly<AgentContext>): string[] {
  return [
    `${c.principal.id} (${c.principal.provenance} by ${c.principal.issuer})`,
    ...c.delegation.map((l) => `${nameOf(l.spiffeId)} (session ${short(l.sessionId)})`),
    `${nameOf(peerId)} (session ${short(c.sessionId)})`,
  ];
}

// --- a local OIDC issuer ------------------------------------------------------------------------------------

interface Issuer {
  kid: string;
  privateKey: KeyObject;
  jwks: string;
}

function localIssuer(): Issuer {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = createHash('sha256')
    .update(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }))
    .digest('base64url')
    .slice(0, 16);
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  return { kid, privateKey, jwks: JSON.stringify({ keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] }) };
}

/** An ID token for `sub`, ES256, as an OIDC provider signs it. */
function idToken(issuer: Issuer, sub: string): string {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${b64({ alg: 'ES256', kid: issuer.kid, typ: 'JWT' })}.${b64({
    iss: IDP,
    aud: 'lanyard',
    sub,
    iat: now,
    exp: now + 300,
  })}`;
  const sig = sign('sha256', Buffer.from(input), { key: issuer.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

// --- gRPC plumbing ------------------------------------------------------------------------------------------

const json = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: <T>(b: Buffer): T => JSON.parse(b.toString('utf8')) as T,
};

const TOOL_SERVICE: grpc.ServiceDefinition = {
  run: {
    path: RUN_METHOD,
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: (b: Buffer) => json.deserialize<RunRequest>(b),
    responseSerialize: json.serialize,
    responseDeserialize: (b: Buffer) => json.deserialize<RunReply>(b),
  },
};

function unary<Req, Res>(
  fn: (
    req: Req,
    md: grpc.Metadata,
    o: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r: Res) => void,
  ) => void,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(e) : resolve(r)));
  });
}

function sessionClient(server: RunningServer, bundle: X509Bundle, who: X509Svid): SessionServiceClient {
  return new SessionServiceClient(
    server.publicAddress,
    lanyardChannelCredentials(bundle, who),
    LANYARD_CHANNEL_OPTIONS,
  );
}

function listen(server: {
  listen(port: number, host: string, cb: () => void): unknown;
  address(): unknown;
}): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

// --- the run ------------------------------------------------------------------------------------------------

/**
 * Runs the whole demo, printing each step to stdout. Resolves when every step behaved as expected.
 * @throws DemoFailure naming the step that did not (the line to print is demoFailureText's).
 */
export async function runDemo(options: DemoOptions = {}): Promise<void> {
  const keep = options.keep === true;
  const policyDir = path.resolve(options.policyDir ?? DEMO_POLICY_DIR);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-demo-'));
  const cleanups: (() => Promise<void> | void)[] = [];
  out(`Lanyard demo: everything on 127.0.0.1, files in ${root}`);
  out();
  try {
    await run(root, cleanups, policyDir);
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
    if (!keep) fs.rmSync(root, { recursive: true, force: true });
  }
}

async function run(root: string, cleanups: (() => Promise<void> | void)[], policyDir: string): Promise<void> {
  // The server, configured as a person would: a YAML file.
  const issuer = localIssuer();
  fs.writeFileSync(path.join(root, 'idp-jwks.json'), issuer.jwks);
  fs.writeFileSync(
    path.join(root, 'lanyard.yaml'),
    [
      `trust_domain: ${TD}`,
      'data_dir: data',
      'listen_address: 127.0.0.1:0',
      'principal_issuers:',
      `  - issuer: ${IDP}`,
      '    audience: lanyard',
      '    jwks_file: idp-jwks.json',
      'policy:',
      `  files: [${JSON.stringify(policyDir)}]`,
      '',
    ].join('\n'),
  );
  const serverLog = fs.createWriteStream(path.join(root, 'server.log'));
  cleanups.push(() => new Promise<void>((r) => serverLog.end(r)));
  const server = await step('server started (SQLite, CA, local OIDC issuer, Cedar policies)', async () => {
    const config = loadConfig({ configFile: path.join(root, 'lanyard.yaml'), env: {} });
    const s = await startServer(config, { logger: createLogger({ level: 'info', destination: serverLog }) });
    cleanups.push(() => s.close());
    expect(s.policy !== undefined, 'the policy engine to be loaded');
    return s;
  });
  const policyVersion = server.policy!.version;
  out(`     ${server.publicAddress}, trust domain ${TD}, policy ${policyVersion} (${policyDir})`);
  const bundle = X509Bundle.fromPem(TrustDomain.parse(TD), server.ca.bundle().toPem());

  const admin = new AdminClient(server.config.adminSocketPath);
  cleanups.push(() => admin.close());
  const tokens = await step(
    'registered planner, tool-runner, service-a, service-b (admin socket)',
    async () => {
      const entries: [string, Record<string, unknown>][] = [
        [
          ID.planner,
          {
            allowedScopes: ['tickets:read', 'tools:run', 'payments:refund'],
            allowedDelegates: [ID.toolRunner],
            maxDelegationDepth: 3,
          },
        ],
        [
          ID.toolRunner,
          { allowedScopes: ['tools:run'], allowedDelegates: [ID.serviceA], maxDelegationDepth: 2 },
        ],
        [ID.serviceA, { allowedScopes: [] }],
        [ID.serviceB, { allowedScopes: [] }],
      ];
      const t: Record<string, string> = {};
      for (const [spiffeId, fields] of entries) {
        const { entry } = await admin.createEntry({
          entry: { spiffeId, selectors: [{ type: 'unix', value: `name:${nameOf(spiffeId)}` }], ...fields },
        });
        // Bound to this entry: a token issues exactly one entry, never "some entry with this SPIFFE ID".
        t[spiffeId] = (await admin.createJoinToken({ entryId: entry!.id })).token;
      }
      return t;
    },
  );

  const sources = await step(
    'each workload attested with its join token (X509Source, renewed in the background)',
    async () => {
      const start = async (id: string): Promise<ServerX509Source> => {
        const s = await ServerX509Source.start({
          server: server.publicAddress,
          bundle,
          attestorType: 'join_token',
          evidence: Buffer.from(tokens[id]!),
        });
        cleanups.push(() => s.close());
        const ctx = s.getX509Svid().context;
        expect(ctx?.policyVersion === policyVersion, `${id}'s SVID to carry policy ${policyVersion}`);
        return s;
      };
      return {
        planner: await start(ID.planner),
        toolRunner: await start(ID.toolRunner),
        serviceA: await start(ID.serviceA),
        serviceB: await start(ID.serviceB),
      };
    },
  );

  // The services: each with its own Cedar engine on the same policy files, its own audit chain.
  const decisions: HopDecision[] = [];
  const auditDir = path.join(root, 'audit');
  const service = async (
    id: string,
  ): Promise<{
    engine: PolicyEngine;
    onDecision: (d: HopDecision) => void;
    file: string;
    settled: () => Promise<void>;
  }> => {
    const engine = PolicyEngine.load({ sources: [policyDir] });
    cleanups.push(() => engine.close());
    const file = path.join(auditDir, `${nameOf(id)}.jsonl`);
    const log = await FileAuditLog.open({ file, chain: id });
    cleanups.push(() => log.close());
    const audit = auditHopDecisions(log);
    return {
      engine,
      file,
      settled: () => audit.settled(),
      onDecision: (d) => {
        decisions.push(d);
        audit(d);
      },
    };
  };
  const a = await service(ID.serviceA);
  const b = await service(ID.serviceB);

  // Service B: https, mutual TLS; the handler prints what it learned from the peer's SVID alone.
  const bDecisions = new Map<string, CedarDecision>();
  const httpsB = createHopHttpsServer(
    {
      source: sources.serviceB,
      authorize: cedarHopPolicy(b.engine, {
        onDecision: (d, req) => bDecisions.set(req.peer.id.toString(), d),
      }),
      revocation: sources.serviceB.revocations,
      onDecision: b.onDecision,
    },
    (req, res, peer: HopPeer) => {
      const chain = chainOf(peer.spiffeId, peer.context!);
      const d = bDecisions.get(peer.spiffeId)!;
      out(`     service-b: ${req.method} ${req.url} from ${peer.spiffeId}`);
      out(`       chain:  ${chain.join(' -> ')}`);
      out(`       intent: "${peer.context!.intent}", scopes [${peer.context!.scopes.join(', ')}]`);
      out(`       policy: ${d.decision} by ${d.reasons.join(', ')} (${d.policyVersion})`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ summary: '3 open tickets, 1 urgent', chain } satisfies RunReply));
    },
  );
  cleanups.push(() => new Promise<void>((r) => httpsB.close(() => r())));
  const bPort = await listen(httpsB);

  // Service A: gRPC over mutual TLS. To act for its caller it redeems the caller's grant (the handoff) and
  // calls B with the delegated SVID, so B sees alice -> planner -> tool-runner -> A. Callers first ask A for
  // the key its delegated SVID will hold (HandoffService.OfferKey), so their grant names it.
  const grpcA = new grpc.Server();
  cleanups.push(() => new Promise<void>((r) => grpcA.tryShutdown(() => r())));
  const handoffKeysA = new HandoffKeys();
  const handOffToB = async (caller: HopPeer, grantId: string, task: string): Promise<RunReply> => {
    // One call: redeem the grant with A's own SVID and the key A offered this caller, checking that the caller
    // signed it with the very certificate it called with; the result is A's delegated SVID, as a source.
    const actingSource = await redeemFromCaller(caller, grantId, {
      server: server.publicAddress,
      source: sources.serviceA,
      keys: handoffKeysA,
    });
    const agent = new HopHttpsAgent({ source: actingSource, authorize: authorizeId(ID.serviceB) });
    try {
      return await new Promise<RunReply>((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port: bPort,
            method: 'POST',
            path: B_ROUTE,
            agent,
            headers: { 'content-type': 'application/json' },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const body = Buffer.concat(chunks).toString('utf8');
              if (res.statusCode !== 200) reject(new Error(`service-b answered ${res.statusCode}: ${body}`));
              else resolve(JSON.parse(body) as RunReply);
            });
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ task }));
      });
    } finally {
      agent.destroy();
      await actingSource.close();
    }
  };
  const hopOptionsA = {
    source: sources.serviceA,
    authorize: cedarHopPolicy(a.engine),
    revocation: sources.serviceA.revocations,
    onDecision: a.onDecision,
  };
  addHandoffService(grpcA, handoffKeysA, hopOptionsA);
  grpcA.addService(
    TOOL_SERVICE,
    hopService(
      TOOL_SERVICE,
      {
        run: (call: grpc.ServerUnaryCall<RunRequest, RunReply>, callback: grpc.sendUnaryData<RunReply>) => {
          const peer = hopPeerOf(call)!;
          out(
            `     service-a: ${RUN_METHOD} from ${peer.spiffeId} (policy ${peer.policyVersion}); handing off to service-b`,
          );
          const grantId = String(call.metadata.get(HANDOFF_GRANT_HEADER)[0] ?? '');
          handOffToB(peer, grantId, call.request.task).then(
            (reply) => callback(null, reply),
            (e: unknown) =>
              callback({ code: grpc.status.FAILED_PRECONDITION, details: (e as Error).message }),
          );
        },
      },
      hopOptionsA,
    ),
  );
  const aPort = await new Promise<number>((resolve, reject) =>
    grpcA.bindAsync('127.0.0.1:0', hopServerCredentials(sources.serviceA), (e, port) =>
      e ? reject(e) : resolve(port),
    ),
  );
  out(` ✔ service-a (gRPC, mTLS) on 127.0.0.1:${aPort}; service-b (https, mTLS) on 127.0.0.1:${bPort}`);

  // The planner opens a task session for alice.
  const plannerSession = await step(
    'planner started a task session for alice (OIDC ID token from the local issuer)',
    async () => {
      const session = await startSession({
        server: server.publicAddress,
        source: sources.planner,
        principal: { evidence: { $case: 'token', value: idToken(issuer, 'alice') } },
        intent: 'summarise open tickets',
        scopes: ['tickets:read', 'tools:run', 'payments:refund'],
        ttlSeconds: 600,
      });
      cleanups.push(() => session.close());
      const scopes = session.getX509Svid().context?.scopes ?? [];
      expect(
        scopes.join() === 'tickets:read,tools:run',
        `scopes tickets:read, tools:run (payments:refund withheld by policy), got [${scopes.join(', ')}]`,
      );
      return session;
    },
  );
  out(
    `     session ${plannerSession.sessionId}: scopes [${plannerSession
      .getX509Svid()
      .context!.scopes.join(', ')}]; payments:refund withheld by policy no-refunds-in-sessions`,
  );

  const toolSource = await step(
    "planner delegated tools:run to the tool-runner (a grant naming the tool-runner's key, redeemed with it)",
    async () => {
      // The tool-runner generates the key first and hands the planner only its hash; the planner's signed
      // grant names it, so the server issues for that key alone and verifiers check it at this hop.
      const key = HandoffKey.generate();
      await grantFor({
        server: server.publicAddress,
        source: plannerSession,
        childId: ID.toolRunner,
        childKey: key.id,
        scopes: ['tools:run'],
      });
      const session = await redeemGrant({
        server: server.publicAddress,
        source: sources.toolRunner,
        key,
      });
      cleanups.push(() => session.close());
      return session;
    },
  );
  const toolSessionId = toolSource.getX509Svid().context!.sessionId;
  const clientA = new grpc.Client(
    `127.0.0.1:${aPort}`,
    hopChannelCredentials({ source: toolSource, authorize: authorizeId(ID.serviceA) }),
    HOP_CHANNEL_OPTIONS,
  );
  cleanups.push(() => clientA.close());
  const callA = (req: RunRequest, grantId?: string): Promise<RunReply> =>
    new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      if (grantId !== undefined) metadata.set(HANDOFF_GRANT_HEADER, grantId);
      clientA.makeUnaryRequest(
        RUN_METHOD,
        json.serialize,
        (b: Buffer) => json.deserialize<RunReply>(b),
        req,
        metadata,
        { deadline: Date.now() + 15_000 },
        (e, r) => (e ? reject(e) : resolve(r!)),
      );
    });

  await step(
    'tool-runner got a key from service-a, granted to it, called it over mTLS gRPC; A handed off to B over https',
    async () => {
      // A key from A over the same mTLS channel, then a grant naming it; the grant id travels with the call.
      const { grantId } = await grantForPeer(clientA, {
        server: server.publicAddress,
        source: toolSource,
        childId: ID.serviceA,
        scopes: ['tools:run'],
      });
      const reply = await callA({ task: 'summarise open tickets' }, grantId);
      const names = reply.chain.map((c) => c.split(' ')[0]);
      expect(
        names.join(' -> ') === 'alice -> planner -> tool-runner -> service-a',
        `B to see alice -> planner -> tool-runner -> service-a, got ${reply.chain.join(' -> ')}`,
      );
      const allowB = decisions.find((d) => d.service === ID.serviceB && d.decision === 'allow');
      expect(allowB?.policyVersion === policyVersion, `B's decision to record policy ${policyVersion}`);
      out(`     reply: "${reply.summary}"`);
    },
  );

  await step('planner ended the session (EndSession cascades to every delegated session)', async () => {
    const revokedAtA = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('service-a did not learn of the end within 5 s')),
        5000,
      );
      const stop = sources.serviceA.revocations.onChange((entries) => {
        if (entries.some((e) => e.id === toolSessionId || e.id === plannerSession.sessionId)) {
          clearTimeout(timer);
          stop();
          resolve();
        }
      });
    });
    const c = sessionClient(server, bundle, plannerSession.getX509Svid());
    try {
      const res = await unary(c.endSession.bind(c), {
        sessionId: plannerSession.sessionId,
        reason: 'task done',
      });
      expect(res.endedSessionIds.includes(toolSessionId), 'the tool-runner session to end with it');
      out(
        `     ended ${res.endedSessionIds.length} sessions; service-a learned it from its WatchRevocations stream`,
      );
    } finally {
      c.close();
    }
    await revokedAtA;
  });

  await step('the next call to service-a is refused', async () => {
    try {
      await callA({ task: 'one more thing' });
    } catch (e) {
      const err = e as grpc.ServiceError;
      const code = err.metadata?.get(HOP_ERROR_CODE_METADATA_KEY)[0];
      expect(
        code === 'ERR_REVOKED',
        `ERR_REVOKED, got ${grpc.status[err.code]} ${String(code)}: ${err.details}`,
      );
      out(`     refused: ${grpc.status[err.code]} ${String(code)}: ${err.details}`);
      return;
    }
    throw new Error('the call succeeded');
  });

  out();
  out('Hop decisions (what each service decided, with the policy version):');
  for (const d of decisions) {
    out(
      `  ${d.at.toISOString()}  ${nameOf(d.service)}  ${d.transport} ${d.action ?? ''}  ${d.decision}${
        d.reason !== undefined ? ` (${d.reason})` : ''
      }  peer ${d.peerId ?? '-'}  policy ${d.policyVersion ?? '-'}`,
    );
  }

  out();
  await step('services shipped their hop chains to the server (lanyard audit ship)', async () => {
    await a.settled();
    await b.settled();
    for (const file of [a.file, b.file]) {
      // `audit ship` signs a checkpoint over the file's last record first, then the server verifies it.
      const shipped = await lanyard([
        'audit',
        'ship',
        '--file',
        file,
        '--socket',
        server.config.adminSocketPath,
      ]);
      out(`     ${shipped.trim()}`);
      // The service's own chain checks out on its own: hashes link, its key signed through the last record.
      const parsed = parseChainText(fs.readFileSync(file, 'utf8'));
      const verified = verifyAuditChain(
        parsed.chain,
        parsed.records,
        parsed.checkpoints,
        AuditPublicKey.fromJwk(parsed.publicJwk),
      );
      expect(verified.ok, `${file} to verify, got ${verified.break?.kind} at ${verified.break?.seq}`);
    }
  });

  await step('every chain on the server verifies (lanyard audit verify --server)', async () => {
    // Exit 0 only when every chain is signed through its last record and the witnesses agree; a chain left
    // unsigned would fail here rather than be shown as OK.
    const verified = await lanyard([
      'audit',
      'verify',
      '--server',
      '--socket',
      server.config.adminSocketPath,
    ]);
    for (const line of verified.trimEnd().split('\n')) {
      const m = /: OK, (\d+) records, .*signed through (\d+) /.exec(line);
      expect(m !== null && m[1] === m[2], `every chain OK and signed through its last record, got: ${line}`);
    }
    out(verified.trimEnd().replace(/^/gm, '     '));
  });

  const trace = await step("the audit trail of alice's task (lanyard audit trace)", async () => {
    // By the session that was refused, as an investigator asks: A's refusal of the revoked SVID keeps the
    // context the CA signed, so it sits under the tool-runner's session, in the whole tree of alice's task.
    const text = await lanyard([
      'audit',
      'trace',
      '--session',
      toolSessionId,
      '--socket',
      server.config.adminSocketPath,
    ]);
    for (const [what, re] of [
      ['alice as the principal', /^principal alice \(https:\/\/idp\.demo\.local\)/m],
      [
        "B's accepting hop decision",
        /hop\.decision {2}allow {2}at spiffe:\/\/lanyard\.local\/services\/service-b/,
      ],
      [
        "A's refusal",
        /hop\.decision {2}DENY ERR_REVOKED {2}at spiffe:\/\/lanyard\.local\/services\/service-a/,
      ],
      ['the session end', /session\.end {2}allow/],
      [
        "A's refusal under the refused session",
        new RegExp(
          `^( *)session ${toolSessionId}\\b.*\\n(?:\\1 +- .*\\n)*?\\1 +- .*hop\\.decision {2}DENY ERR_REVOKED`,
          'm',
        ),
      ],
    ] as const) {
      expect(re.test(text), `${what} in the trace`);
    }
    return text;
  });
  out();
  out(`$ lanyard audit trace --session ${toolSessionId}`);
  out(trace.trimEnd().replace(/^/gm, '  '));
}

/** The lanyard CLI as a person runs it, against this server's admin socket. Async: the server is in-process. */
async function lanyard(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(process.execPath, [LANYARD_BIN, ...args], {
      // Run from the sources, the CLI child runs the sources too (a stale dist/ must not answer for them).
      env: { ...process.env, ...(__filename.endsWith('.ts') ? { LANYARD_FROM_SOURCE: '1' } : {}) },
      timeout: 60_000,
    });
    return stdout;
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    throw new Error(
      `lanyard ${args.slice(0, 2).join(' ')} exited ${String(err.code)}: ${err.stderr ?? ''}${err.stdout ?? ''}`,
    );
  }
}

/** The last lines for a failed run: the failed step, and a stack trace for an error no step expected. */
export function demoFailureText(e: unknown): string {
  const lines = [`Demo FAILED: ${e instanceof Error ? e.message : String(e)}`];
  if (!(e instanceof DemoFailure) && e instanceof Error && e.stack) lines.push(e.stack);
  return lines.join('\n');
}
