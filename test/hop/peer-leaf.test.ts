/**
 * The peer leaf a server-side hop helper verifies, read from the connection's TLS session instead of Node's
 * certificate object: on real TLS connections on 127.0.0.1 it is byte for byte what `getPeerCertificate(false)`
 * reports (TLS 1.3, TLS 1.2, a resumed session), absent without a client certificate, the session's secret
 * bytes are zeroed after the read, and anything that does not read as a session's peer field falls back to
 * Node's accessor.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { certificateOfSession, peerLeafDer } from '../../src/hop/peer-leaf';
import { encodePem } from '../../src/x509/pem';
import { createPki, issueSvid, type Svid } from '../support/pki';

const pki = createPki('peer-leaf.test');
const server = issueSvid(pki, 'spiffe://peer-leaf.test/service');
const client = issueSvid(pki, 'spiffe://peer-leaf.test/agent');
const keyPem = (s: Svid): string => s.key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const certPem = (s: Svid): string => s.chain.map((c) => encodePem('CERTIFICATE', c.der)).join('');

/** What the server saw of one connection, read in 'secureConnection' before anything else. */
interface Seen {
  leaf: Uint8Array | undefined;
  nodeRaw: Buffer | undefined;
  /** The serialized sessions handed out by getSession during the read, as they were left. */
  sessions: Buffer[];
  resumed: boolean;
}

/** A TLS server asking for (not requiring) a client certificate, reading the leaf with `read`. */
async function startServer(
  read: (socket: tls.TLSSocket, seen: Seen) => void = (socket, seen) => {
    seen.leaf = peerLeafDer(socket);
  },
  tlsOptions: tls.TlsOptions = {},
): Promise<{ port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const s = tls.createServer(
    {
      key: keyPem(server),
      cert: certPem(server),
      ca: pki.bundle.toPem(),
      requestCert: true,
      rejectUnauthorized: false,
      ...tlsOptions,
    },
    (socket) => {
      const one: Seen = {
        leaf: undefined,
        nodeRaw: undefined,
        sessions: [],
        resumed: socket.isSessionReused(),
      };
      const getSession = socket.getSession.bind(socket);
      socket.getSession = () => {
        const session = getSession();
        if (session !== undefined) one.sessions.push(session);
        return session;
      };
      read(socket, one);
      const raw = (socket.getPeerCertificate(false) as { raw?: Buffer } | null)?.raw;
      one.nodeRaw = raw !== undefined && raw.length > 0 ? raw : undefined;
      seen.push(one);
      socket.end('x');
    },
  );
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    port: (s.address() as AddressInfo).port,
    seen,
    close: () => new Promise((r) => s.close(() => r())),
  };
}

/** One connection; resolves with the session the client kept (for resumption). */
function connect(port: number, options: tls.ConnectionOptions): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: pki.bundle.toPem(),
      checkServerIdentity: () => undefined,
      ...options,
    });
    socket.on('session', (s: Buffer) => (session = s));
    socket.once('data', () => socket.end());
    socket.once('error', reject);
    socket.once('close', () => resolve(session));
  });
}

const withCert: tls.ConnectionOptions = { key: keyPem(client), cert: certPem(client) };

describe('hop: the peer leaf read from the TLS session', () => {
  for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
    it(`is the leaf Node reports, and the session copy is zeroed (${version})`, async () => {
      const s = await startServer();
      try {
        await connect(s.port, { ...withCert, minVersion: version, maxVersion: version });
        const seen = s.seen[0]!;
        assert.ok(seen.leaf !== undefined);
        assert.deepEqual(Buffer.from(seen.leaf), Buffer.from(client.chain[0]!.der));
        assert.deepEqual(Buffer.from(seen.leaf), seen.nodeRaw);
        // The leaf came from the session, whose copy (master secret included) was wiped.
        assert.equal(seen.sessions.length, 1);
        assert.ok(seen.sessions[0]!.length > 0);
        assert.ok(seen.sessions[0]!.every((b) => b === 0));
      } finally {
        await s.close();
      }
    });
  }

  it('is the same leaf on a resumed session, where the client sends no certificate', async () => {
    const s = await startServer();
    try {
      const session = await connect(s.port, { ...withCert, maxVersion: 'TLSv1.3' });
      assert.ok(session !== undefined);
      await connect(s.port, { ...withCert, maxVersion: 'TLSv1.3', session });
      const resumed = s.seen[1]!;
      assert.equal(resumed.resumed, true);
      assert.ok(resumed.leaf !== undefined);
      assert.deepEqual(Buffer.from(resumed.leaf), Buffer.from(client.chain[0]!.der));
      assert.deepEqual(Buffer.from(resumed.leaf), resumed.nodeRaw);
    } finally {
      await s.close();
    }
  });

  it('is absent when the peer sent no certificate', async () => {
    const s = await startServer();
    try {
      await connect(s.port, {});
      assert.equal(s.seen[0]!.leaf, undefined);
      assert.equal(s.seen[0]!.nodeRaw, undefined);
    } finally {
      await s.close();
    }
  });

  it("falls back to Node's accessor when the session does not read as one", async () => {
    const garbage = [
      undefined,
      Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]),
      Buffer.from([0x04, 0x02, 0xa3, 0x00]),
    ];
    let i = 0;
    const s = await startServer((socket, seen) => {
      const session = garbage[i++];
      socket.getSession = () => session;
      seen.leaf = peerLeafDer(socket);
    });
    try {
      for (let k = 0; k < garbage.length; k++) await connect(s.port, withCert);
      for (const seen of s.seen) {
        assert.ok(seen.leaf !== undefined);
        assert.deepEqual(Buffer.from(seen.leaf), Buffer.from(client.chain[0]!.der));
      }
    } finally {
      await s.close();
    }
  });
});

describe('hop: certificateOfSession', () => {
  const cert = Buffer.from(client.chain[0]!.der);
  /** DER length octets. */
  const len = (n: number): number[] => (n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff]);
  const tlv = (tag: number, value: Buffer): Buffer =>
    Buffer.concat([Buffer.from([tag, ...len(value.length)]), value]);
  const session = (...fields: Buffer[]): Buffer => tlv(0x30, Buffer.concat(fields));
  const version = tlv(0x02, Buffer.from([1]));
  const secret = tlv(0x04, Buffer.alloc(48, 0x5a));
  const hostname = tlv(0xa6, tlv(0x04, Buffer.from('peer.example')));

  it('returns a copy of the [3] field, after fields of any length', () => {
    const der = session(
      version,
      secret,
      tlv(0xa1, tlv(0x02, Buffer.from([1, 2]))),
      tlv(0xa3, cert),
      hostname,
    );
    const out = certificateOfSession(der);
    assert.ok(out !== undefined);
    assert.deepEqual(Buffer.from(out), cert);
    der.fill(0);
    assert.deepEqual(Buffer.from(out), cert, 'not a view of the session bytes');
  });

  it('finds nothing where there is no [3] field, or where it is not one whole certificate', () => {
    assert.equal(certificateOfSession(session(version, secret, hostname)), undefined);
    // The [3] field holds a certificate and more.
    assert.equal(
      certificateOfSession(session(tlv(0xa3, Buffer.concat([cert, Buffer.from([0, 0])])))),
      undefined,
    );
    // The [3] field does not hold a SEQUENCE.
    assert.equal(certificateOfSession(session(tlv(0xa3, tlv(0x04, cert)))), undefined);
    // A certificate inside another field is not the peer's.
    assert.equal(certificateOfSession(session(version, tlv(0xa6, tlv(0xa3, cert)))), undefined);
  });

  it('refuses lengths that are not DER or run past the end', () => {
    const good = session(version, tlv(0xa3, cert));
    // Not a SEQUENCE, truncated anywhere.
    assert.equal(certificateOfSession(Buffer.concat([Buffer.from([0x31]), good.subarray(1)])), undefined);
    for (const cut of [1, 2, 5, 20, good.length - 1]) {
      assert.equal(certificateOfSession(good.subarray(0, cut)), undefined, `cut at ${cut}`);
    }
    // Indefinite length, and a length of more than three octets.
    assert.equal(certificateOfSession(Buffer.from([0x30, 0x80, 0xa3, 0x80, 0x00, 0x00])), undefined);
    assert.equal(certificateOfSession(Buffer.from([0x30, 0x84, 0, 0, 0, 2, 0xa3, 0x00])), undefined);
    // A field whose length runs past its SEQUENCE.
    assert.equal(certificateOfSession(Buffer.from([0x30, 0x04, 0xa3, 0x05, 0x30, 0x00])), undefined);
    assert.equal(certificateOfSession(new Uint8Array(0)), undefined);
  });
});
