/**
 * tlsClientOptions keeps the verify options it makes from an options object for the next call with the same
 * object. A caller may change that object between calls: whatever it changed must decide the next connection,
 * never the options made before. Each test changes one thing the server check depends on and expects the next
 * handshake to be refused (or accepted) for it.
 */
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import { StaticX509Source } from '../../../src/client/static-x509-source';
import { ErrorCode } from '../../../src/errors';
import { createHopTlsServer, tlsClientOptions, type HopClientOptions } from '../../../src/hop/tls';
import { toX509Svid } from '../../../src/svid/x509-svid';
import { authorizeAny, authorizeId, type RevocationChecker } from '../../../src/verify';
import { createPki, issueSvid } from '../../support/pki';
import { listenLocal, pkiSource } from '../../support/hop';

const TD = 'client.test';
const sid = (name: string): string => `spiffe://${TD}/${name}`;

describe('hop: tlsClientOptions', function () {
  this.timeout(30_000);
  const pki = createPki(TD);
  const closers: (() => unknown)[] = [];
  let port = 0;
  let clientSource: StaticX509Source;
  before(async () => {
    const serverSource = pkiSource(issueSvid(pki, sid('api')), pki.bundle);
    const server = createHopTlsServer({ source: serverSource, authorize: authorizeAny() }, (socket) =>
      socket.end('ok'),
    );
    port = await listenLocal(server);
    closers.push(() => new Promise((r) => server.close(r)));
    const client = issueSvid(pki, sid('client'));
    clientSource = new StaticX509Source(toX509Svid(client.chain, client.key.privateKey), pki.bundle);
    closers.push(() => clientSource.close());
  });
  after(async () => {
    for (const c of closers.reverse()) await c();
  });

  /** What the server wrote, or the error code that ended the client's handshake. */
  const connect = (options: HopClientOptions): Promise<string> =>
    new Promise((resolve) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ...tlsClientOptions(options) });
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => (text += d));
      socket.on('error', (e: Error & { code?: string }) => resolve(`error:${e.code ?? e.message}`));
      socket.on('close', () => resolve(text));
    });

  describe('with an options object changed between calls', () => {
    it('another authorizer set on the same object decides the next connection', async () => {
      const options: HopClientOptions = { source: clientSource, authorize: authorizeId(sid('api')) };
      assert.equal(await connect(options), 'ok');
      options.authorize = authorizeId(sid('someone-else'));
      assert.equal(await connect(options), `error:${ErrorCode.UNAUTHORIZED}`);
      options.authorize = authorizeId(sid('api'));
      assert.equal(await connect(options), 'ok');
    });

    it('a revocation checker added to the same object is asked on the next connection', async () => {
      const options: HopClientOptions = { source: clientSource, authorize: authorizeId(sid('api')) };
      assert.equal(await connect(options), 'ok');
      const revokeAll: RevocationChecker = { isRevoked: () => true };
      options.revocation = revokeAll;
      assert.equal(await connect(options), `error:${ErrorCode.REVOKED}`);
      delete options.revocation;
      assert.equal(await connect(options), 'ok');
    });

    it('a trust domain changed in place in the same object’s domain list decides the next connection', async () => {
      // The server's own domain is not the client's declared one: only a listed domain lets its server in.
      const options: HopClientOptions = {
        source: clientSource,
        authorize: authorizeId(sid('api')),
        trustDomain: 'elsewhere.test',
        federatedTrustDomains: [TD],
      };
      assert.equal(await connect(options), 'ok');
      (options.federatedTrustDomains as string[])[0] = 'other.test';
      assert.equal(await connect(options), `error:${ErrorCode.WRONG_TRUST_DOMAIN}`);
    });
  });

  /**
   * A client usually makes a new options object per connection (`tlsClientOptions({ source, authorize })`), and
   * the verify options made for one are kept for the next object of the same values of the same source: another
   * value in a new object must decide its own connection, never the options made for an earlier one.
   */
  describe('with a new options object per call', () => {
    it('another authorizer in a new object decides its connection', async () => {
      const api = authorizeId(sid('api'));
      const other = authorizeId(sid('someone-else'));
      assert.equal(await connect({ source: clientSource, authorize: api }), 'ok');
      assert.equal(await connect({ source: clientSource, authorize: api }), 'ok');
      assert.equal(
        await connect({ source: clientSource, authorize: other }),
        `error:${ErrorCode.UNAUTHORIZED}`,
      );
      assert.equal(await connect({ source: clientSource, authorize: api }), 'ok');
    });

    it('a revocation checker in a new object is asked, and not once it is left out', async () => {
      const api = authorizeId(sid('api'));
      const revokeAll: RevocationChecker = { isRevoked: () => true };
      assert.equal(await connect({ source: clientSource, authorize: api }), 'ok');
      assert.equal(
        await connect({ source: clientSource, authorize: api, revocation: revokeAll }),
        `error:${ErrorCode.REVOKED}`,
      );
      assert.equal(await connect({ source: clientSource, authorize: api }), 'ok');
    });

    it('a domain list of other contents in a new object decides its connection', async () => {
      const api = authorizeId(sid('api'));
      const listed = (domains: string[]): HopClientOptions => ({
        source: clientSource,
        authorize: api,
        trustDomain: 'elsewhere.test',
        federatedTrustDomains: domains,
      });
      assert.equal(await connect(listed([TD])), 'ok');
      assert.equal(await connect(listed(['other.test'])), `error:${ErrorCode.WRONG_TRUST_DOMAIN}`);
      assert.equal(await connect(listed([TD])), 'ok');
    });

    it('each call’s onServer hears of its own connection’s server', async () => {
      const api = authorizeId(sid('api'));
      const heard: string[] = [];
      for (const n of [1, 2, 3]) {
        const onServer = (peer: { spiffeId: string }): void => void heard.push(`${n}:${peer.spiffeId}`);
        assert.equal(await connect({ source: clientSource, authorize: api, onServer }), 'ok');
      }
      assert.deepEqual(heard, [`1:${sid('api')}`, `2:${sid('api')}`, `3:${sid('api')}`]);
    });
  });
});
