/** Two Lanyard servers of different trust domains on loopback, with bundle endpoints, for federation tests. */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { toSpiffeBundle } from '../../../src/bundle/to-spiffe-bundle';
import { ServerX509Source } from '../../../src/client/server-x509-source';
import type { FederationConfig, ServerConfig } from '../../../src/server/config';
import { KEYS_DIR_NAME } from '../../../src/ca/disk-key-manager';
import { encodeAgentContext } from '../../../src/x509/agent-context/codec';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../../src/x509/agent-context/oid';
import type { AgentContext } from '../../../src/x509/agent-context/types';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { spkiDer } from '../../../src/x509/keys';
import { makeCertDer, type Issued } from '../../support/pki';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { type WebPki } from '../../support/pki-openssl';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

export const A = 'a.test';
export const B = 'b.test';

/** Quick polling so a test sees a rotation within seconds; a failed fetch is retried after one second. */
const POLL: Omit<FederationConfig, 'bundleEndpoint'> = {
  bundleRefreshHintSeconds: 2,
  minRefreshSeconds: 1,
  maxRefreshSeconds: 86400,
  defaultRefreshSeconds: 300,
  failureRetrySeconds: 1,
};

export function startFederatedServer(
  trustDomain: string,
  endpoint: NonNullable<FederationConfig['bundleEndpoint']>['tls'],
): Promise<TestServer> {
  const config: Partial<ServerConfig> = {
    trustDomain,
    federation: { ...POLL, bundleEndpoint: { listenAddress: { host: '127.0.0.1', port: 0 }, tls: endpoint } },
  };
  return startTestServer({ dir: tempDataDir(), config });
}

/** The server's bundle as a SPIFFE bundle document: what an operator hands the other side out of band. */
export function bundleJson(s: TestServer): string {
  return JSON.stringify(toSpiffeBundle(s.running.ca.bundle()));
}

/** Registers `path` in `s`'s trust domain (extra entry fields allowed) and attests a ServerX509Source for it. */
export async function federatedWorkload(
  s: TestServer,
  path: string,
  fields: Record<string, unknown> = {},
): Promise<ServerX509Source> {
  const spiffeId = `spiffe://${s.config.trustDomain}/${path}`;
  await s.client.createEntry({
    entry: { spiffeId, selectors: [{ type: 'unix', value: `name:${path}` }], ...fields },
  });
  const { token } = await s.client.createJoinToken({ spiffeId });
  return ServerX509Source.start({
    server: s.running.publicAddress,
    bundle: s.running.ca.bundle(),
    attestorType: 'join_token',
    evidence: Buffer.from(token),
    retry: { initialMs: 100, maxMs: 1000 },
  });
}

/** An https_web endpoint under the test's control, serving whatever document `body()` returns. */
export interface RogueEndpoint {
  url: string;
  body: string;
  close(): Promise<void>;
}

export async function rogueEndpoint(web: WebPki, body: string): Promise<RogueEndpoint> {
  const state = { body };
  const server = https.createServer(
    { cert: fs.readFileSync(web.certFile), key: fs.readFileSync(web.keyFile) },
    (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(state.body);
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}/`,
    get body() {
      return state.body;
    },
    set body(v: string) {
      state.body = v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/**
 * `s`'s active CA as an attacker who stole its key holds it: the CA certificate and its private key, read from
 * the server's key directory (the one key whose public half the certificate names). Signing with it through
 * test/support/certs skips every profile check the server's own issuer applies (such as "only IDs of my domain").
 */
export function stolenCa(s: TestServer): Issued {
  const active = s.running.ca.authorities().find((a) => a.state === 'active');
  if (active === undefined) throw new Error('no active CA');
  const cert = ParsedCertificate.fromDer(active.certDer);
  const dir = path.join(s.dir, KEYS_DIR_NAME);
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.pem'))) {
    const privateKey = createPrivateKey(fs.readFileSync(path.join(dir, f)));
    const publicKey = createPublicKey(privateKey);
    if (Buffer.from(spkiDer(publicKey)).equals(Buffer.from(cert.spkiDer))) {
      return { cert, key: { privateKey, publicKey } };
    }
  }
  throw new Error(`no key in ${dir} matches the active CA`);
}

/** An X509-SVID for `id` that `ca` signs, whatever its trust domain, with `context` under the default OID. */
export function rogueSvid(
  ca: Issued,
  id: string,
  publicKey: KeyObject,
  context: AgentContext,
  ttlSeconds = 600,
): Uint8Array[] {
  const now = Date.now();
  const { der } = makeCertDer({
    cn: id,
    issuer: ca,
    key: { publicKey, privateKey: undefined as unknown as KeyObject },
    basicConstraints: { ca: false },
    keyUsage: ['digitalSignature'],
    eku: [SERVER_AUTH, CLIENT_AUTH],
    uris: [id],
    notBefore: new Date(now - 10_000),
    notAfter: new Date(Math.floor((now + ttlSeconds * 1000) / 1000) * 1000),
    extra: [{ oid: DEFAULT_AGENT_CONTEXT_OID, critical: false, value: encodeAgentContext(context) }],
  });
  return [der];
}
