/**
 * The CA's signing pool (src/ca/signing-pool.ts): CSR checks and signatures in worker threads, through the
 * CaManager as the server uses it. Real threads, real keys, the real store.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Bundle } from '../../src/bundle';
import { CaManager, type SignedX509Svid } from '../../src/ca';
import { CaNotReadyError, ErrorCode, isLanyardError } from '../../src/errors';
import { verifyX509Svid } from '../../src/verify';
import { encodeAgentContext } from '../../src/x509/agent-context/codec';
import { ParsedCertificate } from '../../src/x509/certificate';
import { createCsr, parseCsr } from '../../src/x509/csr';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { DataDir, TD } from '../support/ca';
import { T0 } from '../support/clock';
import { createPki, plannerChain } from '../support/pki';
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
