/**
 * The CA's signing pool (src/ca/signing-pool.ts): CSR checks and signatures in worker threads, through the
 * CaManager as the server uses it. Real threads, real keys, the real store.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Bundle } from '../../src/bundle';
import { CaManager, type SignedX509Svid } from '../../src/ca';
import { SigningPool } from '../../src/ca/signing-pool';
import {
  CaNotReadyError,
  ErrorCode,
  InvalidArgumentError,
  isLanyardError,
  type LanyardError,
  UnsupportedKeyError,
} from '../../src/errors';
import { verifyX509Svid } from '../../src/verify';
import { encodeAgentContext } from '../../src/x509/agent-context/codec';
import { ParsedCertificate } from '../../src/x509/certificate';
import { createCsr, parseCsr } from '../../src/x509/csr';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { DataDir, TD } from '../support/ca';
import { T0 } from '../support/clock';
import { createPki, plannerChain } from '../support/pki';
import { rawCsr } from '../support/raw-csr';
import { assertRefusal, rejectsWithCodeAs } from '../support/refusal';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../src/x509/agent-context/oid';
import { removeDir, tempDir } from '../support/tmp';

const at = new Date(T0.getTime() + 1000);

function request(publicKey = generateSigningKeyPair('ec-p256').publicKey, path = '/agent') {
  return { spiffeId: `spiffe://${TD}${path}`, publicKey, ttlSeconds: 300, now: T0 };
}

/** What a relying party checks, byte for byte: our verifier and OpenSSL's. */
function assertValidSvid(ca: CaManager | X509Bundle, svid: SignedX509Svid, spiffeId: string): void {
  const bundle = ca instanceof CaManager ? ca.bundle() : ca;
  const verified = verifyX509Svid(svid.chain, bundle, { at, cache: null });
  assert.equal(verified.id.toString(), spiffeId);
  const leaf = new X509Certificate(Buffer.from(svid.chain[0]!));
  const issuer = new X509Certificate(Buffer.from(svid.chain[1]!));
  assert.ok(leaf.verify(issuer.publicKey), 'OpenSSL verifies the leaf under the CA certificate');
  assert.ok(leaf.checkIssued(issuer));
  assert.deepEqual(svid.leaf.der, svid.chain[0]);
  // The fields the worker reports are the certificate's own, without the server parsing it.
  const parsed = ParsedCertificate.fromDer(svid.chain[0]!);
  assert.equal(svid.leaf.spiffeId, parsed.uriSans[0]);
  assert.equal(svid.leaf.serialHex, parsed.serialHex);
  assert.equal(svid.leaf.notBefore.getTime(), parsed.notBefore.getTime());
  assert.equal(svid.leaf.notAfter.getTime(), parsed.notAfter.getTime());
}

const certOf = (svid: SignedX509Svid): ParsedCertificate => ParsedCertificate.fromDer(svid.chain[0]!);

const same = (a: Uint8Array | undefined, b: Uint8Array): boolean =>
  a !== undefined && Buffer.from(a).equals(Buffer.from(b));

describe('ca/signing-pool: CSR checks and signing in worker threads', function () {
  // Each worker loads the x509 code through tsx on its first start.
  this.timeout(60_000);
  let dir: string;
  let d: DataDir;
  beforeEach(() => {
    dir = tempDir('signing-pool');
    d = new DataDir(dir);
  });
  afterEach(async () => {
    await d.stop();
    removeDir(dir);
  });

  it('issues SVIDs that verify, for the key the CSR proved, as the in-thread path does', async () => {
    const { ca } = await d.start({ signingWorkers: 2 });
    assert.equal(ca.signingWorkers, 2);
    const workloads = Array.from({ length: 24 }, () => generateSigningKeyPair('ec-p256'));
    const svids = await Promise.all(
      workloads.map(async (w, i) => {
        const csr = await ca.checkCsr(createCsr(w.privateKey).der);
        assert.ok(csr.publicKey.equals(w.publicKey), 'the worker hands back the key the CSR holds');
        return ca.signX509Svid(request(csr.publicKey, `/agent/${i}`));
      }),
    );
    svids.forEach((svid, i) => {
      assertValidSvid(ca, svid, `spiffe://${TD}/agent/${i}`);
      assert.ok(certOf(svid).publicKey.equals(workloads[i]!.publicKey));
    });

    // With a context and DNS names, the worker's leaf carries what the in-thread one carries.
    const hop = plannerChain(createPki(TD))[0]!; // its context; the key it is for
    const withContext = {
      ...request(hop.key.publicKey),
      dnsNames: ['agent.example.org'],
      agentContextDer: encodeAgentContext(hop.context),
    };
    const pooled = await ca.signX509Svid(withContext);
    assertValidSvid(ca, pooled, `spiffe://${TD}/agent`);
    assert.deepEqual(certOf(pooled).extension(DEFAULT_AGENT_CONTEXT_OID)?.value, withContext.agentContextDer);
    assert.deepEqual([...certOf(pooled).dnsSans], ['agent.example.org']);
    assert.equal(pooled.leaf.notAfter.getTime(), T0.getTime() + 300_000);
    assert.deepEqual(pooled.leaf.agentContextDer, withContext.agentContextDer);
  });

  it('refuses a bad CSR in the worker with the typed error parseCsr gives', async () => {
    const { ca } = await d.start({ signingWorkers: 1 });
    const good = createCsr(generateSigningKeyPair('ec-p256').privateKey);
    const tampered = Uint8Array.from(good.der);
    tampered[tampered.length - 3]! ^= 0x01; // inside the signature: framing intact, proof of possession broken
    const cases: [string, Uint8Array | string][] = [
      ['garbage', Uint8Array.of(1, 2, 3)],
      ['truncated', good.der.subarray(0, good.der.length - 10)],
      ['tampered signature', tampered],
      ['PEM of another kind', good.pem.replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE')],
      ['oversized', new Uint8Array(17 * 1024)],
    ];
    for (const [what, csr] of cases) {
      let expected: unknown;
      try {
        parseCsr(csr);
      } catch (e) {
        expected = e;
      }
      assert.ok(isLanyardError(expected), `${what}: parseCsr refuses it`);
      const got = await ca.checkCsr(csr).then(
        () => assert.fail(`${what}: the worker accepted it`),
        (e: unknown) => e,
      );
      const refusal = assertRefusal(got, expected.code, { message: expected.message });
      assert.equal(refusal.constructor, expected.constructor, `${what}: same class`);
    }
    // A signing refusal (another trust domain) keeps its type across the thread too.
    const e = await ca
      .signX509Svid({ ...request(), spiffeId: 'spiffe://other.org/agent' })
      .catch((x: unknown) => x);
    assertRefusal(e, ErrorCode.WRONG_TRUST_DOMAIN);
  });

  it('fails the calls a dying worker held with ERR_CA_NOT_READY, replaces it, and loses no answered call', async () => {
    const { ca } = await d.start({ signingWorkers: 1 });
    await ca.signX509Svid(request()); // the worker is up and holds the CA key
    const calls = Array.from({ length: 64 }, (_, i) =>
      ca.signX509Svid(request(undefined, `/w/${i}`)).then(
        (svid) => ({ ok: true as const, svid, i }),
        (e: unknown) => ({ ok: false as const, e, i }),
      ),
    );
    await ca.stopSigningWorkerForDrill(0);
    const results = await Promise.all(calls);
    const failed = results.filter((r) => !r.ok);
    assert.ok(failed.length > 0, 'the worker held calls when it stopped');
    for (const r of results) {
      if (r.ok) assertValidSvid(ca, r.svid, `spiffe://${TD}/w/${r.i}`);
      else
        assertRefusal(r.e, ErrorCode.CA_NOT_READY, {
          class: CaNotReadyError,
          message: /signing worker stopped/,
        });
    }
    // A new worker took its place and got the key again.
    const after = await ca.signX509Svid(request());
    assertValidSvid(ca, after, `spiffe://${TD}/agent`);
    assert.equal(ca.signingWorkerRestarts, 1);
  });

  it('drains on close: calls in flight finish, later ones are refused, no thread is left', async () => {
    const { ca } = await d.start({ signingWorkers: 2 });
    const inFlight = Array.from({ length: 40 }, (_, i) => ca.signX509Svid(request(undefined, `/d/${i}`)));
    const csrCheck = ca.checkCsr(createCsr(generateSigningKeyPair('ec-p256').privateKey).der);
    const bundle = ca.bundle();
    const closing = ca.close();
    const svids = await Promise.all(inFlight);
    svids.forEach((svid, i) => assertValidSvid(bundle, svid, `spiffe://${TD}/d/${i}`));
    await csrCheck;
    await closing;
    await rejectsWithCodeAs(ca.signX509Svid(request()), CaNotReadyError, ErrorCode.CA_NOT_READY);
    await rejectsWithCodeAs(
      ca.checkCsr(createCsr(generateSigningKeyPair('ec-p256').privateKey).der),
      CaNotReadyError,
      ErrorCode.CA_NOT_READY,
    );
    assert.equal(ca.signingWorkers, 0, 'every worker thread stopped');
  });

  it('signs with the authority each call named when calls for two authorities interleave in one turn', async () => {
    // One worker, so every call of the turn goes to it in one batch: the key it holds changes four times
    // inside that batch (a rotation while calls for the old CA are still queued).
    const pool = new SigningPool(1);
    try {
      const authorities = [createPki(TD), createPki(TD)].map((pki, i) => ({
        id: `authority-${i}`,
        certDer: pki.intermediate.cert.der,
        key: pki.intermediate.key.privateKey,
        cert: pki.intermediate.cert,
      }));
      const nowMs = authorities[0]!.cert.notBefore.getTime() + 60_000;
      const order = [0, 0, 1, 1, 0, 1, 0, 0];
      const leaves = await Promise.all(
        order.map((a, i) =>
          pool.sign(authorities[a]!, {
            spiffeId: `spiffe://${TD}/turn/${i}`,
            publicKey: generateSigningKeyPair('ec-p256').publicKey,
            ttlSeconds: 60,
            nowMs,
            agentContextOid: DEFAULT_AGENT_CONTEXT_OID,
          }),
        ),
      );
      leaves.forEach((leaf, i) => {
        const issuer = authorities[order[i]!]!.cert;
        const cert = new X509Certificate(Buffer.from(leaf.der));
        assert.ok(cert.verify(issuer.publicKey), `call ${i} is signed by the authority it named`);
        assert.deepEqual(ParsedCertificate.fromDer(leaf.der).issuerDer, issuer.subjectDer);
        assert.equal(leaf.spiffeId, `spiffe://${TD}/turn/${i}`);
      });
    } finally {
      await pool.close();
    }
  });

  it("leaves the caller's bytes as they were: a CSR and an agent context that are views on a shared buffer", async () => {
    const { ca } = await d.start({ signingWorkers: 1 });
    const key = generateSigningKeyPair('ec-p256');
    const context = encodeAgentContext(plannerChain(createPki(TD))[0]!.context);
    // The CSR is a window on a larger buffer (a frame); the context a small Buffer in Node's 8 KiB pool, as the
    // gRPC decoder's are. Neither may be detached, changed, or sent whole.
    const der = createCsr(key.privateKey).der;
    const frame = new Uint8Array(der.length + 64);
    frame.set(der, 32);
    const csr = Buffer.from(frame.buffer, 32, der.length);
    const contextView = Buffer.from(context);
    const csrCopy = Buffer.from(der);
    const checked = await ca.checkCsr(csr);
    assert.ok(checked.publicKey.equals(key.publicKey));
    const svid = await ca.signX509Svid({ ...request(checked.publicKey), agentContextDer: contextView });
    assertValidSvid(ca, svid, `spiffe://${TD}/agent`);
    assert.equal(csr.length, csrCopy.length, 'the CSR buffer is not detached');
    const same = (a: Uint8Array | undefined, b: Uint8Array): boolean =>
      a !== undefined && Buffer.from(a).equals(Buffer.from(b));
    assert.ok(csr.equals(csrCopy));
    assert.equal(frame.byteLength, der.length + 64, 'the frame is not detached');
    assert.ok(same(contextView, context), 'the agent context is not detached');
    assert.ok(same(svid.leaf.agentContextDer, context));
    assert.ok(same(certOf(svid).extension(DEFAULT_AGENT_CONTEXT_OID)?.value, context));
    assert.ok(same(checked.spki, certOf(svid).spkiDer), 'the SPKI the worker reported is the one signed');
  });

  describe('a key given as its CSR: checked and signed in one request', () => {
    /** Each refusal parseCsr gives, as the CSR it refuses and the error it throws. */
    function badCsrs(): [string, Uint8Array | string, LanyardError][] {
      const good = createCsr(generateSigningKeyPair('ec-p256').privateKey);
      const tampered = Uint8Array.from(good.der);
      tampered[tampered.length - 3]! ^= 0x01; // inside the signature: framing intact, proof of possession broken
      const inputs: [string, Uint8Array | string][] = [
        ['empty', new Uint8Array(0)],
        ['garbage', Uint8Array.of(1, 2, 3)],
        ['truncated', good.der.subarray(0, good.der.length - 10)],
        ['tampered signature', tampered],
        ['PEM of another kind', good.pem.replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE')],
        ['oversized', new Uint8Array(17 * 1024)],
      ];
      return inputs.map(([what, csr]) => {
        try {
          parseCsr(csr);
        } catch (e) {
          assert.ok(isLanyardError(e), `${what}: parseCsr refuses it with a typed error`);
          return [what, csr, e];
        }
        return assert.fail(`${what}: parseCsr accepted it`);
      });
    }

    for (const workers of [0, 2]) {
      it(`refuses every CSR parseCsr refuses, with its class and message (${workers} workers)`, async () => {
        const { ca } = await d.start({ signingWorkers: workers });
        const expected = badCsrs();
        const got = await Promise.all(
          expected.map(([what, csr]) =>
            ca.signX509Svid({ ...request(), publicKey: undefined, csr }).then(
              () => assert.fail(`${what}: a leaf was signed`),
              (e: unknown) => e,
            ),
          ),
        );
        got.forEach((e, i) => {
          const [what, , want] = expected[i]!;
          const refusal = assertRefusal(e, want.code, { message: want.message });
          assert.equal(refusal.constructor, want.constructor, `${what}: same class`);
        });
        // Good requests in the same turns as the bad ones are signed, each for its own key.
        const keys = Array.from({ length: 6 }, () => generateSigningKeyPair('ec-p384'));
        const svids = await Promise.all(
          keys.map((k, i) =>
            ca.signX509Svid({
              ...request(undefined, `/agent/${i}`),
              publicKey: undefined,
              csr: i % 2 === 0 ? createCsr(k.privateKey).der : createCsr(k.privateKey).pem,
            }),
          ),
        );
        svids.forEach((svid, i) => {
          assertValidSvid(ca, svid, `spiffe://${TD}/agent/${i}`);
          assert.ok(certOf(svid).publicKey.equals(keys[i]!.publicKey), 'signed for the key the CSR proved');
        });
      });

      it(`signs for a pinned key only: another key is ERR_INVALID_ARGUMENT with the pin's message (${workers} workers)`, async () => {
        const { ca } = await d.start({ signingWorkers: workers });
        const bound = generateSigningKeyPair('ec-p256');
        const spki = parseCsr(createCsr(bound.privateKey).der).spki;
        const sameKeyAs = { spki, refusal: 'session s-1 was delegated to this key' };
        for (const other of [
          generateSigningKeyPair('ec-p256'),
          generateSigningKeyPair('ec-p384'),
          generateSigningKeyPair('ed25519'),
        ]) {
          const e = await ca
            .signX509Svid({
              ...request(),
              publicKey: undefined,
              csr: createCsr(other.privateKey).der,
              sameKeyAs,
            })
            .catch((x: unknown) => x);
          assertRefusal(e, ErrorCode.INVALID_ARGUMENT, {
            class: InvalidArgumentError,
            message: sameKeyAs.refusal,
          });
        }
        // A bad CSR for the pinned slot is refused as a bad CSR, before the pin is compared.
        const tampered = Uint8Array.from(createCsr(bound.privateKey).der);
        tampered[tampered.length - 3]! ^= 0x01;
        const bad = await ca
          .signX509Svid({ ...request(), publicKey: undefined, csr: tampered, sameKeyAs })
          .catch((x: unknown) => x);
        assertRefusal(bad, ErrorCode.CSR_SIGNATURE_INVALID);
        // The pinned key itself, from a fresh CSR (a new signature over the same key), is signed.
        const svid = await ca.signX509Svid({
          ...request(),
          publicKey: undefined,
          csr: createCsr(bound.privateKey).der,
          sameKeyAs,
        });
        assertValidSvid(ca, svid, `spiffe://${TD}/agent`);
        assert.ok(same(certOf(svid).spkiDer, spki));
      });
    }

    it('refuses a CSR for a key outside the accepted set with ERR_UNSUPPORTED_KEY (1 worker)', async () => {
      const { ca } = await d.start({ signingWorkers: 1 });
      // RSA-1024: node:crypto signs the request, parseCsr's key vetting refuses it.
      const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
      const csr = rawCsr(weak, { oid: '1.2.840.113549.1.1.11', hash: 'sha256', params: null });
      const e = await ca.signX509Svid({ ...request(), publicKey: undefined, csr }).catch((x: unknown) => x);
      assertRefusal(e, ErrorCode.UNSUPPORTED_KEY, { class: UnsupportedKeyError });
    });

    it("leaves the caller's CSR bytes as they were: a view on a larger buffer", async () => {
      const { ca } = await d.start({ signingWorkers: 1 });
      const key = generateSigningKeyPair('ec-p256');
      const der = createCsr(key.privateKey).der;
      const frame = new Uint8Array(der.length + 64);
      frame.set(der, 32);
      const csr = Buffer.from(frame.buffer, 32, der.length);
      const svid = await ca.signX509Svid({ ...request(), publicKey: undefined, csr });
      assertValidSvid(ca, svid, `spiffe://${TD}/agent`);
      assert.equal(frame.byteLength, der.length + 64, 'the frame is not detached');
      assert.ok(csr.equals(Buffer.from(der)));
    });
  });

  it('refuses a key outside the accepted set with ERR_UNSUPPORTED_KEY, with and without workers', async () => {
    const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey;
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey;
    for (const workers of [0, 1]) {
      const { ca } = await d.start({ signingWorkers: workers });
      for (const key of [secp256k1, rsa1024]) {
        const e = await ca.signX509Svid(request(key)).catch((x: unknown) => x);
        assertRefusal(e, ErrorCode.UNSUPPORTED_KEY, { class: UnsupportedKeyError });
      }
      await d.stop();
    }
  });

  it('keeps the CA key where it was: no new file, nothing in the log or in any refusal', async () => {
    const { ca } = await d.start({ signingWorkers: 2 });
    const keyFiles = readdirSync(d.keysDir);
    const keyPem = readFileSync(join(d.keysDir, keyFiles[0]!), 'utf8');
    const keyBody = keyPem.split('\n')[1]!; // a line of the key's base64
    const refusals: unknown[] = [];
    await ca.signX509Svid(request());
    refusals.push(await ca.checkCsr(Uint8Array.of(0x30, 0x00)).catch((e: unknown) => e));
    refusals.push(
      await ca.signX509Svid({ ...request(), spiffeId: 'spiffe://other.org/x' }).catch((e: unknown) => e),
    );
    const dying = ca.signX509Svid(request()).catch((e: unknown) => e);
    await ca.stopSigningWorkerForDrill(0);
    await ca.stopSigningWorkerForDrill(1);
    refusals.push(await dying);
    for (const r of refusals) {
      if (!(r instanceof Error)) continue;
      assert.ok(!JSON.stringify({ m: r.message, s: r.stack }).includes(keyBody), 'a refusal carries the key');
    }
    assert.deepEqual(readdirSync(d.keysDir), keyFiles, 'no file was written for the workers');
    assert.ok(!d.log.raw.join('').includes(keyBody), 'the log carries the key');
  });
});
