/**
 * checkServerTrust: the server's chain, read from Node's detailed peer certificate (peer-chain.ts, as views of
 * the buffers Node made for it), goes through the verifier and must carry the Lanyard server's SPIFFE ID.
 * Real TLS on 127.0.0.1: a server presenting the server ID passes; one presenting another ID of the same trust
 * domain, or an ID minted by another CA, is refused with the verifier's typed error.
 */
import assert from 'node:assert/strict';
import * as tls from 'node:tls';
import { checkServerTrust, SERVER_ID_PATH } from '../../src/client/server-credentials';
import { ErrorCode, isLanyardError } from '../../src/errors';
import { certsPem, createPki, issueSvid, keyPem, type Svid } from '../support/pki';
import { closeServer, listenLocal } from '../support/hop';

const TD = 'trust.test';

describe('client: checkServerTrust', function () {
  this.timeout(20_000);
  const pki = createPki(TD);
  const servers: tls.Server[] = [];
  after(async () => {
    for (const s of servers) await closeServer(s);
  });

  async function serve(svid: Svid): Promise<string> {
    const server = tls.createServer({ key: keyPem(svid.key.privateKey), cert: certsPem(svid.chain) }, (s) =>
      s.end(),
    );
    servers.push(server);
    return `127.0.0.1:${await listenLocal(server)}`;
  }

  const refusal = async (address: string): Promise<string> => {
    try {
      await checkServerTrust(address, pki.bundle);
    } catch (e) {
      assert.ok(isLanyardError(e), `not a typed error: ${String(e)}`);
      return e.code;
    }
    return 'accepted';
  };

  it('accepts the server ID under the bundle', async () => {
    await checkServerTrust(await serve(issueSvid(pki, `spiffe://${TD}${SERVER_ID_PATH}`)), pki.bundle);
  });

  it('refuses another ID of the same trust domain', async () => {
    assert.equal(
      await refusal(await serve(issueSvid(pki, `spiffe://${TD}/not-the-server`))),
      ErrorCode.UNAUTHORIZED,
    );
  });

  it('refuses the server ID minted by a CA the bundle does not hold', async () => {
    const impostor = createPki(TD);
    const code = await refusal(await serve(issueSvid(impostor, `spiffe://${TD}${SERVER_ID_PATH}`)));
    assert.notEqual(code, 'accepted');
  });
});
