/**
 * A real mutual-TLS handshake between a Node `tls` server and client on 127.0.0.1, both holding SVIDs minted by
 * Lanyard's profiles, with Lanyard's verifier and authorizers deciding on each side (see helpers/mtls.ts).
 * The client connects to an IP address its server's SVID does not name: hostname checking is replaced by SPIFFE
 * ID authorization. Every test waits on socket events only.
 */
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { BundleSet } from '../../../src/bundle';
import { ErrorCode, LanyardError } from '../../../src/errors';
import {
  allOf,
  authorizeId,
  authorizeMemberOf,
  requirePrincipal,
  requireScopes,
  StaticRevocationList,
} from '../../../src/verify';
import {
  ALICE,
  baseContext,
  certsPem,
  createPki,
  delegatedPair,
  issueSvid,
  makeLeaf,
  Svid,
  TrustDomainPki,
} from '../../support/pki';
import {
  ClientOutcome,
  connectWithSvid,
  ServerConnection,
  ServerReply,
  SvidServer,
  SvidServerOptions,
} from './helpers/mtls';

const DAY_SECONDS = 24 * 3600;
const SERVER_ID = 'spiffe://example.org/tool-server';

function assertRefusedWith(e: unknown, code: string, message: RegExp): void {
  assert.ok(e instanceof LanyardError, `expected a LanyardError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  assert.match(e.message, message);
}

describe('interop: mutual TLS between Node tls peers with Lanyard SVIDs and the verifier in the handshake', () => {
  let pki: TrustDomainPki;
  let otherPki: TrustDomainPki;
  /** Bundles the verifier consults: example.org and the federated other.org. */
  let bundles: BundleSet;
  /** The same roots, as PEM, for Node's TLS layer. */
  let caPem: string;
  let serverSvid: Svid;
  /** A delegated session SVID: alice's planner session handed docs:read to the retrieval agent. */
  let client: Svid;
  const servers: SvidServer[] = [];

  before(() => {
    // CAs issued a day ago, so that SVIDs issued in the past are within their lifetime.
    const yesterday = new Date(Date.now() - DAY_SECONDS * 1000);
    pki = createPki('example.org', { now: yesterday, ttlSeconds: 3 * DAY_SECONDS });
    otherPki = createPki('other.org', {
      now: yesterday,
      ttlSeconds: 3 * DAY_SECONDS,
      rootCommonName: 'other.org root CA',
    });
    bundles = new BundleSet([pki.bundle, otherPki.bundle]);
    caPem = certsPem([pki.root.cert, otherPki.root.cert]);
    serverSvid = issueSvid(pki, SERVER_ID, {
      context: baseContext({
        agentId: 'tool-server',
        sessionId: 'session-tool-server',
        scopes: ['tools:serve'],
        principal: {
          id: 'platform-team',
          issuer: 'spiffe://example.org/lanyard/server',
          provenance: 'workload',
        },
      }),
    });
    client = delegatedPair(
      pki,
      { name: 'planner', scopes: ['docs:read', 'docs:write'], ttlSeconds: 3600 },
      { name: 'retrieval', scopes: ['docs:read'], ttlSeconds: 1800 },
    ).child;
  });

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  /** The tool server: example.org members acting for a verified principal of alice's IdP with docs:read. */
  async function startServer(overrides: Partial<SvidServerOptions> = {}): Promise<SvidServer> {
    const server = await SvidServer.start({
      svid: serverSvid,
      caPem,
      bundles,
      authorizer: allOf(
        authorizeMemberOf('example.org'),
        requireScopes('docs:read'),
        requirePrincipal({ issuer: ALICE.issuer, provenance: 'verified' }),
      ),
      ...overrides,
    });
    servers.push(server);
    return server;
  }

  /** Connect as `svid`, expecting the tool server, and return both sides' view of the connection. */
  async function exchange(
    server: SvidServer,
    svid: Svid,
  ): Promise<{ client: ClientOutcome; server: ServerConnection }> {
    const outcome = await connectWithSvid({
      port: server.port,
      svid,
      caPem,
      bundles,
      authorizer: authorizeId(SERVER_ID),
      request: 'GET /docs/q3-report',
    });
    assert.ok(outcome.localPort !== undefined, 'the TCP connection was made');
    return { client: outcome, server: await server.connectionFrom(outcome.localPort) };
  }

  /** The server destroyed the connection unread after `code`; the client got nothing back. */
  function assertServerRefused(
    result: { client: ClientOutcome; server: ServerConnection },
    code: string,
    message: RegExp,
  ): void {
    assert.equal(
      result.server.reachedApplication,
      true,
      'the TLS layer accepted the chain; Lanyard refused it',
    );
    assertRefusedWith(result.server.refusal, code, message);
    assert.equal(result.server.peer, undefined);
    assert.equal(result.server.received, '', 'nothing was read from a refused client');
    assert.equal(result.client.received, '', 'a refused client gets no answer');
  }

  it("a good pair exchanges data, and each side reads the other's SPIFFE ID, principal and scopes", async () => {
    const server = await startServer();
    const { client: c, server: s } = await exchange(server, client);

    assert.equal(c.error, undefined, c.error?.message);
    assert.equal(c.protocol, 'TLSv1.3');
    // The client's view of the server, from the verifier run inside checkServerIdentity.
    assert.equal(c.server?.id.toString(), SERVER_ID);
    assert.equal(c.server?.context?.principal.id, 'platform-team');
    assert.equal(c.server?.context?.principal.provenance, 'workload');
    assert.deepEqual(c.server?.context?.scopes, ['tools:serve']);
    assert.equal(c.server?.chain.length, 3, 'server leaf, intermediate, root');

    // The server's view of the client, from the verifier run in 'secureConnection'.
    assert.equal(s.refusal, undefined);
    assert.equal(s.peer?.id.toString(), 'spiffe://example.org/agent/retrieval');
    assert.deepEqual(s.peer?.context?.principal, ALICE);
    assert.deepEqual(s.peer?.context?.scopes, ['docs:read']);
    assert.equal(s.peer?.context?.rootSessionId, 'session-planner');
    assert.deepEqual(
      s.peer?.context?.delegation.map((l) => l.spiffeId),
      ['spiffe://example.org/agent/planner'],
    );
    assert.equal(s.received, 'GET /docs/q3-report\n');

    // Data went both ways: the server's answer reports what it verified about the client.
    const reply = JSON.parse(c.received) as ServerReply;
    assert.deepEqual(reply, {
      peer: 'spiffe://example.org/agent/retrieval',
      principal: 'alice',
      scopes: ['docs:read'],
      delegatedBy: ['spiffe://example.org/agent/planner'],
      request: 'GET /docs/q3-report',
    });

    // Node's hostname check would have refused this server (no IP SAN for 127.0.0.1): SPIFFE ID authorization
    // is what admitted it.
    assert.ok(c.serverCertificate !== undefined);
    const hostnameVerdict = tls.checkServerIdentity('127.0.0.1', c.serverCertificate);
    assert.equal(
      (hostnameVerdict as NodeJS.ErrnoException | undefined)?.code,
      'ERR_TLS_CERT_ALTNAME_INVALID',
    );
  });

  describe('refusals', () => {
    it('a client SVID of another (federated) trust domain is refused by the authorizer', async () => {
      const server = await startServer();
      const foreign = issueSvid(otherPki, 'spiffe://other.org/agent/retrieval', {
        // Issued by other.org's own server: a context naming example.org's would fail verification first.
        context: baseContext({
          agentId: 'retrieval',
          sessionId: 'session-other',
          scopes: ['docs:read'],
          provenance: {
            method: 'join_token',
            evidenceSha256: new Uint8Array(32).fill(7),
            issuer: 'spiffe://other.org/lanyard/server',
            issuedAt: new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000),
          },
        }),
      });
      assertServerRefused(
        await exchange(server, foreign),
        ErrorCode.UNAUTHORIZED,
        /not a member of trust domain example\.org/,
      );
    });

    it("another trust domain's CA minting an example.org ID: OpenSSL's chain check passes, Lanyard refuses", async () => {
      const server = await startServer();
      // other.org's intermediate signs an example.org ID. Lanyard's issuer refuses to (ERR_WRONG_TRUST_DOMAIN), so
      // the forgery comes from the permissive test builder. Node's TLS layer trusts other.org's root.
      const forged = makeLeaf('spiffe://example.org/agent/retrieval', otherPki.intermediate, {
        notBefore: new Date(Date.now() - 60_000),
        notAfter: new Date(Date.now() + 3600_000),
      });
      const forgedSvid: Svid = {
        id: 'spiffe://example.org/agent/retrieval',
        key: forged.key,
        cert: forged.cert,
        chain: [forged.cert, otherPki.intermediate.cert],
      };
      assertServerRefused(
        await exchange(server, forgedSvid),
        ErrorCode.UNKNOWN_AUTHORITY,
        /does not chain to any trust anchor/,
      );
    });

    it("a client with an expired SVID: refused by Node's TLS layer, and by Lanyard alone when the chain is left to it", async () => {
      const expired = issueSvid(pki, 'spiffe://example.org/agent/retrieval', {
        now: new Date(Date.now() - 2 * 3600_000),
        ttlSeconds: 3600,
        context: baseContext({ agentId: 'retrieval', sessionId: 'session-expired', scopes: ['docs:read'] }),
      });

      const standard = await startServer();
      const tlsRefused = await exchange(standard, expired);
      assert.equal(tlsRefused.server.reachedApplication, false, 'never handed to the application');
      assert.equal(tlsRefused.server.received, '');
      assert.equal(tlsRefused.client.received, '');

      const lanyardOnly = await startServer({ rejectUnauthorized: false });
      // Not vacuous: the same server admits a valid client.
      const admitted = await exchange(lanyardOnly, client);
      assert.equal(admitted.server.peer?.id.toString(), client.id);
      assertServerRefused(await exchange(lanyardOnly, expired), ErrorCode.SVID_EXPIRED, /expired at/);
    });

    it('a server presenting the wrong SPIFFE ID: the client aborts in the handshake and sends nothing', async () => {
      const impostorSvid = issueSvid(pki, 'spiffe://example.org/impostor');
      const impostor = await startServer({ svid: impostorSvid });
      const { client: c, server: s } = await exchange(impostor, client);

      assertRefusedWith(
        c.error,
        ErrorCode.UNAUTHORIZED,
        /spiffe:\/\/example\.org\/impostor is not SPIFFE ID spiffe:\/\/example\.org\/tool-server/,
      );
      assert.equal(c.server, undefined);
      assert.equal(c.sentRequest, false, "no 'secureConnect': the request was never written");
      assert.equal(c.received, '');
      assert.equal(s.received, '', 'the impostor read nothing');
    });

    it('a client whose certificate serial is revoked (StaticRevocationList) is refused; others are not', async () => {
      const revoked = issueSvid(pki, 'spiffe://example.org/agent/retrieval', {
        context: baseContext({ agentId: 'retrieval', sessionId: 'session-revoked', scopes: ['docs:read'] }),
      });
      const server = await startServer({
        revocation: new StaticRevocationList().revokeSerial(revoked.cert.serialHex),
      });
      assertServerRefused(
        await exchange(server, revoked),
        ErrorCode.REVOKED,
        new RegExp(`certificate serial ${revoked.cert.serialHex} is revoked`),
      );
      const admitted = await exchange(server, client);
      assert.equal(admitted.server.peer?.id.toString(), client.id);
    });

    it('a delegated client whose root session has ended is refused (the end cascades down the chain)', async () => {
      const server = await startServer({
        revocation: new StaticRevocationList().revokeSession('session-planner', 'task ended'),
      });
      assertServerRefused(
        await exchange(server, client),
        ErrorCode.REVOKED,
        /root session session-planner has ended \(task ended\)/,
      );
    });

    it('a client lacking the required scope is refused by requireScopes', async () => {
      const server = await startServer();
      const { child: toolRunner } = delegatedPair(
        pki,
        { name: 'planner', scopes: ['docs:read', 'tools:run'], ttlSeconds: 3600 },
        { name: 'tool-runner', scopes: ['tools:run'], ttlSeconds: 1800 },
      );
      assertServerRefused(
        await exchange(server, toolRunner),
        ErrorCode.UNAUTHORIZED,
        /lacks scope\(s\) "docs:read"/,
      );
    });
  });
});
