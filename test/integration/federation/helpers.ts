/** Two Lanyard servers of different trust domains on loopback, with bundle endpoints, for federation tests. */
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { toSpiffeBundle } from '../../../src/bundle/to-spiffe-bundle';
import { ServerX509Source } from '../../../src/client/server-x509-source';
import type { FederationConfig, ServerConfig } from '../../../src/server/config';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { type WebPki } from '../../support/pki-openssl';

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
  const fs = await import('node:fs');
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
