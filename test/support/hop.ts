/**
 * Shared pieces of the hop tests: a real Lanyard server, workloads that get their SVIDs from it through a
 * ServerX509Source (join token attestation), foreign and test-controlled PKIs, and a decision recorder.
 */
import assert from 'node:assert/strict';
import * as https from 'node:https';
import type { AddressInfo, Server } from 'node:net';
import * as tls from 'node:tls';
import { X509Bundle } from '../../src/bundle';
import { ServerX509Source } from '../../src/client/server-x509-source';
import { StaticX509Source } from '../../src/client/static-x509-source';
import { toX509Svid } from '../../src/svid/x509-svid';
import type { SessionX509Source } from '../../src/client/handoff';
import type { LanyardError } from '../../src/errors';
import type { HopDecision } from '../../src/hop/decision';
import { grantFor, HandoffKey, redeemGrant } from '../../src/hop/handoff';
import { tlsServerOptions } from '../../src/hop/tls';
import type { RequestListener } from 'node:http';
import { TrustDomain } from '../../src/spiffe';
import { startTestServer, type TestServer } from './test-server';
import { certsPem, keyPem, type Svid } from './pki';
import { expectRefusal } from './refusal';

export const TD = 'lanyard.local';
export const id = (p: string): string => `spiffe://${TD}/${p}`;

export async function startLanyard(): Promise<TestServer> {
  return startTestServer();
}

export function serverBundle(s: TestServer): X509Bundle {
  return X509Bundle.fromPem(TrustDomain.parse(TD), s.running.ca.bundle().toPem());
}

/** Registers `name` (extra entry fields allowed) and starts a source attested with a fresh join token. */
export async function workloadSource(
  s: TestServer,
  name: string,
  fields: Record<string, unknown> = {},
  options: Partial<Parameters<typeof ServerX509Source.start>[0]> = {},
): Promise<ServerX509Source> {
  const spiffeId = id(name);
  await s.client.createEntry({
    entry: { spiffeId, selectors: [{ type: 'unix', value: `name:${name}` }], ...fields },
  });
  const { token } = await s.client.createJoinToken({ spiffeId });
  return ServerX509Source.start({
    server: s.running.publicAddress,
    bundle: serverBundle(s),
    attestorType: 'join_token',
    evidence: Buffer.from(token),
    retry: { initialMs: 100, maxMs: 1000 },
    ...options,
  });
}

/** A source holding an SVID minted by a test PKI (foreign or expired certificates), trusting `bundles`. */
export function pkiSource(svid: Svid, bundles: X509Bundle | X509Bundle[]): StaticX509Source {
  return new StaticX509Source(toX509Svid(svid.chain, svid.key.privateKey), bundles);
}

/** Collects HopDecisions; `next(pred)` resolves with the first (past or future) one matching. */
export class DecisionLog {
  readonly all: HopDecision[] = [];
  private waiters: { pred: (d: HopDecision) => boolean; resolve: (d: HopDecision) => void }[] = [];
  readonly listener = (d: HopDecision): void => {
    this.all.push(d);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(d)) return true;
      w.resolve(d);
      return false;
    });
  };
  next(pred: (d: HopDecision) => boolean): Promise<HopDecision> {
    const seen = this.all.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
  denials(): HopDecision[] {
    return this.all.filter((d) => d.decision === 'deny');
  }
}

/** Polls `check` until it returns true; fails after `bound` ms (a generous bound, not a timing assertion). */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  bound = 10_000,
  what = 'condition',
): Promise<void> {
  const until = Date.now() + bound;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) assert.fail(`${what} did not hold within ${bound} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Resolves with the reason `source` ended (register before the action that ends it). */
export function endOf(source: Pick<ServerX509Source, 'on'>): Promise<LanyardError> {
  return new Promise((resolve) => source.on('ended', resolve));
}

/**
 * Awaits `ended` (from endOf) and asserts the source ended with `code` and serves nothing after: getX509Svid
 * throws that same code.
 */
export async function assertSourceEnded(
  ended: Promise<LanyardError>,
  source: Pick<ServerX509Source, 'getX509Svid'>,
  code: string,
): Promise<LanyardError> {
  const reason = await ended;
  assert.equal(reason.code, code);
  expectRefusal(() => source.getX509Svid(), code);
  return reason;
}

/**
 * A delegation handoff against `s`: `parent` grants `scopes` to `childName` for a fresh key, and `childSource`
 * redeems it (with `redeem`'s extra options). Returns the child's session source.
 */
export async function handOff(
  s: TestServer,
  parent: SessionX509Source,
  childName: string,
  childSource: ServerX509Source,
  scopes: string[],
  redeem: Partial<Parameters<typeof redeemGrant>[0]> = {},
): Promise<{ child: SessionX509Source; key: HandoffKey }> {
  const key = HandoffKey.generate();
  await grantFor({
    server: s.running.publicAddress,
    source: parent,
    childId: id(childName),
    childKey: key.id,
    scopes,
  });
  const child = await redeemGrant({
    server: s.running.publicAddress,
    source: childSource,
    key,
    ...redeem,
  });
  return { child, key };
}

/** GET `path` on 127.0.0.1:`port` through `agent` (a hop agent presenting an SVID); the body parsed as JSON. */
export function httpsGetJson<T>(
  port: number,
  path: string,
  agent: https.Agent,
): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path, agent }, (res) => {
        let t = '';
        res.on('data', (d: Buffer) => (t += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(t) as T }));
      })
      .on('error', reject);
  });
}

/** Listens on 127.0.0.1 at a free port and resolves with it. */
export async function listenLocal(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as AddressInfo).port;
}

/**
 * An https server with the hop helpers' TLS options over `source`, serving `handler` on 127.0.0.1 (close it with
 * closeServer). `keepAliveTimeoutMs` keeps connections open across a test's requests.
 */
export async function listenHttps(
  source: Parameters<typeof tlsServerOptions>[0],
  handler: RequestListener,
  keepAliveTimeoutMs?: number,
): Promise<{ server: https.Server; port: number }> {
  const server = https.createServer(tlsServerOptions(source), handler);
  if (keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = keepAliveTimeoutMs;
  return { server, port: await listenLocal(server) };
}

/** Closes `server` with the connections it still holds (kept-alive ones included). */
export function closeServer(server: tls.Server): Promise<void> {
  (server as Partial<https.Server>).closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** What a plain TLS client presenting an SVID needs: its key and chain, the roots, no host-name check. */
export function svidClientOptions(client: Svid, roots: string): tls.ConnectionOptions {
  return {
    key: keyPem(client.key.privateKey),
    cert: certsPem(client.chain),
    ca: roots,
    // SVIDs name a SPIFFE ID, not a host: the hop helpers under test are the ones that check identities.
    checkServerIdentity: () => undefined,
  };
}

/** A plain Node keep-alive agent presenting `client`; one connection at most, so requests ride the same one. */
export function svidAgent(client: Svid, roots: string): https.Agent {
  return new https.Agent({ keepAlive: true, maxSockets: 1, ...svidClientOptions(client, roots) });
}

/** One https exchange: status and body, or the error; the socket it rode and whether its session was resumed. */
export interface HttpsReply {
  status?: number;
  text?: string;
  error?: Error;
  reused?: boolean;
  socket?: tls.TLSSocket;
}

/** A request to 127.0.0.1:`port` (GET / unless `options` say otherwise); a transport error resolves as `error`. */
export function httpsCall(port: number, options: https.RequestOptions): Promise<HttpsReply> {
  return new Promise((resolve) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/', ...options }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          text,
          reused: (req.socket as tls.TLSSocket).isSessionReused(),
          socket: req.socket as tls.TLSSocket,
        }),
      );
    });
    req.on('error', (error) => resolve({ error }));
    req.end();
  });
}

/** The JSON body of a reply, with a refusal's `error.code` when there is one. */
export function jsonOf<T extends object = Record<string, unknown>>(
  r: HttpsReply,
): T & { error?: { code: string; message: string } } {
  assert.ok(r.text !== undefined, `no reply: ${r.error?.message}`);
  return JSON.parse(r.text) as T & { error?: { code: string; message: string } };
}

/** What a raw TLS exchange gave: what the server wrote before closing, resumption, the session ticket. */
export interface TlsExchange {
  reply: string;
  reused: boolean;
  session?: Buffer;
}

/**
 * Connects to 127.0.0.1:`port` presenting `client` (resuming `session` when given) and reads until the server
 * closes; a refused handshake reads ''.
 */
export function tlsExchange(
  port: number,
  client: Svid,
  roots: string,
  session?: Buffer,
): Promise<TlsExchange> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...svidClientOptions(client, roots),
      ...(session !== undefined ? { session } : {}),
    });
    let reply = '';
    let ticket: Buffer | undefined;
    // Asked at secureConnect: after 'close' the TLS handle is gone and Node answers null.
    let reused = false;
    socket.once('secureConnect', () => (reused = socket.isSessionReused()));
    socket.setEncoding('utf8');
    socket.on('session', (t: Buffer) => (ticket = t));
    socket.on('data', (d: string) => (reply += d));
    socket.on('error', () => undefined);
    socket.on('close', () =>
      resolve({ reply, reused, ...(ticket !== undefined ? { session: ticket } : {}) }),
    );
  });
}
