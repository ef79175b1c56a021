/** Agents with workload and session SVIDs against a real test server, for the revocation tests. */
import { createPublicKey, type KeyObject } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { signGrant, type GrantParams } from '../../src/client/delegation';
import {
  EndSessionRequest,
  type EndSessionResponse,
  SessionServiceClient,
  StartSessionRequest,
  type StartSessionResponse,
  type WatchRevocationsResponse,
} from '../../src/gen/lanyard/v1/session';
import { ParsedCertificate } from '../../src/x509/certificate';
import { createCsr } from '../../src/x509/csr';
import { verifyX509Svid } from '../../src/verify';
import type { X509Bundle } from '../../src/bundle';
import * as fs from 'node:fs';
import type { StartOptions } from '../../src/server/run';
import { startTestServer, tempDataDir, type TestServer } from './test-server';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster';
import {
  attest,
  connectPublic,
  newKey,
  publicCredentials,
  PUBLIC_CHANNEL_OPTIONS,
  type PublicClients,
} from './public-client';

export const TD = 'lanyard.local';

/**
 * What the session calls need of a server: its public address and bundle. A TestServer is one; a server
 * process (the HA fault test) is described by hand.
 */
export interface PublicServer {
  running: { publicAddress: string; ca: { bundle(): X509Bundle } };
}
export const id = (p: string): string => `spiffe://${TD}/${p}`;

export interface Agent {
  spiffeId: string;
  key: KeyObject;
  chain: Uint8Array[];
}

export function unary<Req, Res>(
  fn: (
    req: Req,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r: Res) => void,
  ) => void,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(e) : resolve(r)));
  });
}

export function sessionClient(s: PublicServer, who?: Agent): SessionServiceClient {
  const bundlePem = s.running.ca.bundle().toPem();
  return new SessionServiceClient(
    s.running.publicAddress,
    publicCredentials(bundlePem, TD, who),
    PUBLIC_CHANNEL_OPTIONS,
  );
}

/**
 * Registers an entry and attests it with a join token: the agent's workload SVID. Any server with an admin
 * client: a TestServer, or a server process (the scale bench's).
 */
export async function register(
  s: PublicServer & Pick<TestServer, 'client'>,
  name: string,
  fields: Record<string, unknown> = {},
): Promise<Agent> {
  const spiffeId = id(name);
  await s.client.createEntry({
    entry: { spiffeId, selectors: [{ type: 'unix', value: `name:${name}` }], ...fields },
  });
  const { token } = await s.client.createJoinToken({ spiffeId });
  const { key, csr } = newKey();
  const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD);
  try {
    const r = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(token),
      csr,
    });
    return { spiffeId, key, chain: r.svid!.certChain.map((b) => new Uint8Array(b)) };
  } finally {
    pub.close();
  }
}

export async function startSession(
  s: PublicServer,
  agent: Agent,
  req: { scopes?: string[]; intent?: string } = {},
): Promise<{ agent: Agent; res: StartSessionResponse }> {
  const c = sessionClient(s, agent);
  try {
    const { key, csr } = newKey();
    const res = await unary(c.startSession.bind(c), StartSessionRequest.fromPartial({ csr, ...req }));
    return { agent: { ...agent, key, chain: res.svid!.certChain.map((b) => new Uint8Array(b)) }, res };
  } finally {
    c.close();
  }
}

/** A registered grant and the key the child generated before the parent signed (the grant names it). */
export interface TestGrant {
  grantId: string;
  childKey: KeyObject;
  /** The further delegations the server holds for the child (CreateGrantResponse.max_depth). */
  maxDepth?: number;
}

/**
 * The child's key first (`childKey`, fresh by default), then the parent signs a grant for `childId` naming it
 * with its own session key (signGrant, as a real parent does) and registers it with CreateGrant, with
 * `maxDepth` (the child's further delegations) when given.
 */
export async function createGrant(
  s: PublicServer,
  parent: Agent,
  params: Omit<GrantParams, 'parentCert' | 'parentKey' | 'childKey'> & {
    childKey?: KeyObject;
    maxDepth?: number;
  },
): Promise<TestGrant> {
  const { maxDepth, ...grant } = params;
  const childKey = grant.childKey ?? newKey().key;
  const signed = signGrant({
    parentCert: parent.chain[0]!,
    parentKey: parent.key,
    ...grant,
    childKey: createPublicKey(childKey),
  });
  const c = sessionClient(s, parent);
  try {
    const r = await unary(c.createGrant.bind(c), {
      binding: Buffer.from(signed.bindingDer),
      signature: Buffer.from(signed.signature),
      maxDepth,
    });
    return { grantId: r.grantId, childKey, maxDepth: r.maxDepth };
  } finally {
    c.close();
  }
}

/**
 * The child redeems `grant` with its workload SVID and a CSR for the key the grant names (or `key`, to try
 * another): its delegated SVID.
 */
export async function redeemGrant(
  s: PublicServer,
  child: Agent,
  grant: TestGrant,
  key: KeyObject = grant.childKey,
): Promise<Agent> {
  const c = sessionClient(s, child);
  try {
    const r = await unary(c.redeemGrant.bind(c), {
      grantId: grant.grantId,
      foreignGrant: undefined,
      csr: Buffer.from(createCsr(key).der),
    });
    return { ...child, key, chain: r.svid!.certChain.map((b) => new Uint8Array(b)) };
  } finally {
    c.close();
  }
}

/** EndSession over mTLS as `agent` (the session's own agent, or an admin SVID). */
export async function endSession(
  s: PublicServer,
  agent: Agent,
  sessionId: string,
  reason = '',
): Promise<EndSessionResponse> {
  const c = sessionClient(s, agent);
  try {
    return await unary(c.endSession.bind(c), EndSessionRequest.fromPartial({ sessionId, reason }));
  } finally {
    c.close();
  }
}

/**
 * The raw messages of one WatchRevocations stream, from `afterSequence` until `done` says so (then the
 * stream is cancelled). Rejects with the stream's error. `packed`: ask for packed pages (as the library's
 * watcher does); by default the revocations come as messages, as for a client that predates them.
 */
export function collectWatch(
  client: SessionServiceClient,
  afterSequence: number,
  done: (messages: readonly WatchRevocationsResponse[]) => boolean,
  packed = false,
): Promise<WatchRevocationsResponse[]> {
  return new Promise((resolve, reject) => {
    const messages: WatchRevocationsResponse[] = [];
    const call = client.watchRevocations({ afterSequence, packed });
    call.on('data', (m: WatchRevocationsResponse) => {
      messages.push(m);
      if (done(messages)) {
        call.cancel();
        resolve(messages);
      }
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) reject(e);
    });
  });
}

/**
 * `parent` (a session SVID) grants `childWl`'s identity `scopes`; the child redeems the grant with a fresh key:
 * the child's delegated session SVID and its session id.
 */
export async function delegate(
  s: TestServer,
  parent: Agent,
  childWl: Agent,
  scopes: string[],
): Promise<{ agent: Agent; sessionId: string }> {
  const grant = await createGrant(s, parent, { childId: childWl.spiffeId, scopes });
  const agent = await redeemGrant(s, childWl, grant);
  const context = verifyX509Svid(agent.chain, s.running.ca.bundle()).context!;
  return { agent, sessionId: context.sessionId };
}

/** The serial (lowercase hex) of an agent's current certificate. */
export function serialOf(agent: Agent): string {
  return ParsedCertificate.fromDer(agent.chain[0]!).serialHex;
}

/**
 * A real server for the enclosing describe block (started in `before`, stopped and its data dir removed in
 * `after`) and the mTLS public clients of its agents, closed with it. With `store: 'postgres'` its store is a
 * database on a throwaway PostgreSQL cluster (./postgres-cluster.ts), stopped after the server; `openStore`
 * opens the SQLite store instead of the server's default (to hold its fsync, say).
 */
export function useServerWithClients(
  options: { store?: 'sqlite' | 'postgres'; openStore?: StartOptions['openStore'] } = {},
): {
  server: () => TestServer;
  connect: (agent: Agent) => PublicClients;
} {
  const dir = tempDataDir();
  let s: TestServer | undefined;
  let cluster: PostgresCluster | undefined;
  const closers: (() => void)[] = [];
  before(async function () {
    if (options.store !== 'postgres') {
      s = await startTestServer({
        dir,
        ...(options.openStore !== undefined && { start: { openStore: options.openStore } }),
      });
      return;
    }
    // Installing Debian's postgresql on a bare machine can take minutes; a present one starts in seconds.
    this.timeout(15 * 60_000);
    cluster = await startPostgresCluster();
    const database = await cluster.createDatabase('server');
    s = await startTestServer({
      dir,
      config: { postgres: { url: cluster.url(database), poolSize: 5, passwordFile: cluster.passwordFile } },
    });
  });
  after(async () => {
    for (const c of closers) c();
    await s?.stop();
    await cluster?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const server = (): TestServer => {
    if (s === undefined) throw new Error('the server starts in the before hook');
    return s;
  };
  return {
    server,
    connect: (agent) => {
      const c = connectPublic(
        server().running.publicAddress,
        server().running.ca.bundle().toPem(),
        TD,
        agent,
      );
      closers.push(() => c.close());
      return c;
    },
  };
}
