/**
 * OIDC discovery for JWT-SVIDs, checked by an independent relying party: panva's `jose` (createRemoteJWKSet +
 * jwtVerify) follows the discovery document of a real server over https_web to its JWKS and verifies real
 * JWT-SVIDs handed out by a real agent's Workload API, before and after a JWT key rotation.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import type { JWTSVIDResponse } from '../../../src/gen/spiffe/workload/workload';
import { JwtAuthority } from '../../../src/server/node/jwt-authority';
import { MemoryKeyManager } from '../../../src/ca';
import { startTestServer, type TestServer } from '../../support/test-server';
import { AGENT_ID, TD, header, startAgentFor, workloadClient, type AgentFixture } from '../../support/agent';
import { createWebPki, type WebPki } from '../../support/pki-openssl';
import { freePort } from '../../support/free-port';
import { tempDir } from '../../support/tmp';

const WORKLOAD_ID = `spiffe://${TD}/workload/cloud-uploader`;
const AUDIENCE = 'sts.example.test';

interface Fetched {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function get(url: string, agent: https.Agent, method = 'GET'): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { agent, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('OIDC discovery for JWT-SVIDs (jose as the relying party)', function () {
  this.timeout(60_000);
  let s: TestServer;
  let a: AgentFixture;
  let pki: WebPki;
  let issuer: string;
  let agent: https.Agent;

  before(async () => {
    pki = createWebPki(tempDir('oidc'));
    const port = await freePort();
    issuer = `https://localhost:${port}`;
    s = await startTestServer({
      config: {
        oidcDiscovery: {
          issuer,
          listenAddress: { host: '127.0.0.1', port },
          tls: { certFile: pki.certFile, keyFile: pki.keyFile },
        },
      },
      // The test moves JWT key rotation along itself.
      start: { rotationTimer: false },
    });
    await s.client.createEntry({
      entry: {
        spiffeId: WORKLOAD_ID,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
      },
    });
    a = await startAgentFor(s);
    // Trusts the test Web PKI only, as a cloud's STS trusts the public Web PKI.
    agent = new https.Agent({ ca: pki.rootPem, keepAlive: false });
  });

  after(async () => {
    agent?.destroy();
    await a?.close();
    await s?.stop();
  });

  async function discover(): Promise<{ issuer: string; jwks_uri: string }> {
    const r = await get(`${issuer}/.well-known/openid-configuration`, agent);
    assert.equal(r.status, 200);
    return JSON.parse(r.body) as { issuer: string; jwks_uri: string };
  }

  /** A fresh key set each time, so jose's cache never hides a rotation. */
  async function remoteKeys(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    const doc = await discover();
    return createRemoteJWKSet(new URL(doc.jwks_uri), { agent });
  }

  async function workloadJwt(): Promise<string> {
    const client = workloadClient(a.socketPath);
    try {
      for (let i = 0; ; i++) {
        try {
          const r = await new Promise<JWTSVIDResponse>((resolve, reject) =>
            client.fetchJwtsvid({ audience: [AUDIENCE], spiffeId: '' }, header(), (e, v) =>
              e ? reject(e) : resolve(v),
            ),
          );
          return r.svids[0]!.svid;
        } catch (e) {
          // The agent learns the entry at its next sync.
          if (i > 50) throw e;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    } finally {
      client.close();
    }
  }

  it('serves the provider metadata for the configured issuer', async () => {
    const r = await get(`${issuer}/.well-known/openid-configuration`, agent);
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    const doc = JSON.parse(r.body) as Record<string, unknown>;
    assert.equal(doc.issuer, issuer);
    assert.equal(doc.jwks_uri, `${issuer}/keys`);
    assert.deepEqual(doc.response_types_supported, ['id_token']);
    assert.deepEqual(doc.subject_types_supported, ['public']);
    assert.deepEqual(doc.id_token_signing_alg_values_supported, ['ES256']);
    assert.equal(typeof doc.authorization_endpoint, 'string');
  });

  it('a JWT-SVID from the Workload API carries iss and verifies against the served JWKS', async () => {
    const token = await workloadJwt();
    assert.equal(decodeJwt(token).iss, issuer);
    const { payload, protectedHeader } = await jwtVerify(token, await remoteKeys(), {
      issuer,
      audience: AUDIENCE,
      algorithms: ['ES256'],
    });
    assert.equal(payload.sub, WORKLOAD_ID);
    assert.equal(protectedHeader.kid, s.running.jwt.keyId);
  });

  it('a relying party expecting another issuer refuses the token', async () => {
    const token = await workloadJwt();
    await assert.rejects(
      jwtVerify(token, await remoteKeys(), { issuer: 'https://other.example.test', audience: AUDIENCE }),
      (e: unknown) => e instanceof errors.JWTClaimValidationFailed && e.claim === 'iss',
    );
  });

  it('a token signed by a key the JWKS does not publish is refused, even with the right iss', async () => {
    const rogue = await JwtAuthority.open(new MemoryKeyManager(), { issuer });
    const iat = Math.floor(Date.now() / 1000);
    const forged = rogue.sign({ sub: WORKLOAD_ID, aud: [AUDIENCE], iat, exp: iat + 60 });
    await assert.rejects(
      jwtVerify(forged, await remoteKeys(), { issuer, audience: AUDIENCE }),
      (e: unknown) => e instanceof errors.JWKSNoMatchingKey,
    );
  });

  it('publishes the next key before it signs, keeps the retired one while its tokens live, then drops it', async () => {
    const jwt = s.running.jwt;
    const ttlMs = s.running.config.caTtlSeconds * 1000;
    const start = Date.now();
    const oldKid = jwt.keyId;
    const iat = Math.floor(start / 1000);
    const oldToken = jwt.sign({ sub: WORKLOAD_ID, aud: [AUDIENCE], iat, exp: iat + 300 });
    const kids = async (): Promise<string[]> =>
      (JSON.parse((await get(`${issuer}/keys`, agent)).body) as { keys: { kid: string }[] }).keys.map(
        (k) => k.kid,
      );

    const prepared = await jwt.tick(new Date(start + ttlMs / 2 + 1000));
    assert.ok(prepared.prepared !== undefined);
    assert.deepEqual((await kids()).sort(), [oldKid, prepared.prepared].sort());
    assert.equal(jwt.keyId, oldKid, 'the prepared key does not sign yet');

    const activated = await jwt.tick(new Date(start + (ttlMs * 5) / 6 + 600_000));
    assert.equal(activated.activated, prepared.prepared);
    const newToken = jwt.sign({ sub: WORKLOAD_ID, aud: [AUDIENCE], iat, exp: iat + 300 });
    assert.equal(decodeProtectedHeader(newToken).kid, prepared.prepared);
    const at = new Date(iat * 1000 + 1000);
    for (const t of [oldToken, newToken]) {
      await jwtVerify(t, await remoteKeys(), { issuer, audience: AUDIENCE, currentDate: at });
    }

    // Past the retired key's last token: it leaves the JWKS, and its tokens no longer verify.
    const removed = await jwt.tick(new Date(start + (ttlMs * 5) / 6 + 600_000 + 3600_000));
    assert.deepEqual(removed.removed, [oldKid]);
    assert.deepEqual(await kids(), [prepared.prepared]);
    await assert.rejects(
      jwtVerify(oldToken, await remoteKeys(), { issuer, audience: AUDIENCE, currentDate: at }),
      (e: unknown) => e instanceof errors.JWKSNoMatchingKey,
    );
    await jwtVerify(newToken, await remoteKeys(), { issuer, audience: AUDIENCE, currentDate: at });
  });

  it('speaks TLS only: a plain-HTTP request gets no document', async () => {
    const { port } = new URL(issuer);
    await assert.rejects(
      new Promise((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/.well-known/openid-configuration' }, resolve);
        req.on('error', reject);
      }),
    );
  });

  it('a relying party that does not trust the certificate refuses the endpoint', async () => {
    const untrusting = new https.Agent({ keepAlive: false });
    try {
      await assert.rejects(get(`${issuer}/keys`, untrusting), /self.signed|unable to verify|certificate/i);
    } finally {
      untrusting.destroy();
    }
  });

  it('answers 404 for other paths and 405 for other methods', async () => {
    assert.equal((await get(`${issuer}/`, agent)).status, 404);
    assert.equal((await get(`${issuer}/.well-known/jwks.json`, agent)).status, 404);
    assert.equal((await get(`${issuer}/keys`, agent, 'POST')).status, 405);
    const head = await get(`${issuer}/keys`, agent, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  it('refuses to start with a key file others can read', async () => {
    const dir = tempDir('oidc-insecure');
    const loose = createWebPki(dir);
    fs.chmodSync(loose.keyFile, 0o644);
    await assert.rejects(
      startTestServer({
        config: {
          oidcDiscovery: {
            issuer: 'https://localhost:1',
            listenAddress: { host: '127.0.0.1', port: 0 },
            tls: { certFile: loose.certFile, keyFile: path.resolve(loose.keyFile) },
          },
        },
      }),
      (e: unknown) => (e as { code?: string }).code === 'ERR_KEY_FILE_INSECURE',
    );
  });
});
