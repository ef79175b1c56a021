/**
 * CA rotation under a running server with CA TTLs of seconds, driven by the real rotation timer. The
 * property: an SVID signed by a CA keeps verifying, against the bundle WatchBundle delivered last, after a
 * newer CA took over signing, until it expires; once the old CA expired its root leaves the watched bundle.
 *
 * Timing: the CA is asked for 24 s and, backdated 10 s, lives 34 s; the next CA is prepared half-way and
 * activated when 1/6 (about 5.7 s) remains. SVIDs live 6 s, capped at their CA's end, so an SVID signed just
 * before an activation stays valid for about 5.7 s after it: the window in which one loop pass (a join token,
 * an Attest, the checks) must run to see the crossing. A pass takes tens of milliseconds on an idle machine and
 * rarely a second on a loaded one. The window cannot be stretched with an injected server clock: the TLS
 * clients check the server's certificates against the real one. Nothing is timed; every wait is a poll with a
 * generous limit. Three activations take about 37 s.
 */
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { ErrorCode, isLanyardError } from '../../../src/errors';
import type { WatchBundleResponse } from '../../../src/gen/lanyard/v1/bundle';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { startTestServer, type TestServer } from '../../support/test-server';
import {
  attest,
  connectPublic,
  newKey,
  renewCall,
  watchBundle,
  type PublicClients,
} from '../../support/public-client';

const TD = 'lanyard.local';
const td = TrustDomain.parse(TD);
const CA_TTL_SECONDS = 24;
const SVID_TTL_SECONDS = 6;
/** Activations to see: each one must show an older CA's SVID verifying under the newer CA. */
const ACTIVATIONS = 3;
const LOOP_LIMIT_MS = 70_000;
const STEP_MS = 300;

interface HeldSvid {
  index: number;
  chain: Buffer[];
  key: KeyObject;
  notAfter: Date;
  /** SHA-256 of the CA certificate (trust anchor) the SVID verified to. */
  issuer: string;
}

/** One verification of a held SVID, and which CA was signing new SVIDs at that moment. */
interface Check {
  svid: number;
  issuer: string;
  signingCa: string;
  sequence: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function bundleOf(m: WatchBundleResponse): X509Bundle {
  return X509Bundle.fromPem(td, m.bundle!.x509AuthoritiesPem);
}

function rootsOf(m: WatchBundleResponse): string[] {
  return bundleOf(m).x509Authorities.map((c) => c.sha256Hex);
}

describe('CA rotation seen through WatchBundle', function () {
  this.timeout(120_000);
  let s: TestServer;
  let pub: PublicClients;

  before(async () => {
    s = await startTestServer({
      config: { caTtlSeconds: CA_TTL_SECONDS, svidDefaultTtlSeconds: SVID_TTL_SECONDS },
      start: { serverSvidTtlSeconds: 8 },
    });
    pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD);
  });
  after(async () => {
    pub.close();
    await s.stop();
  });

  it('SVIDs of an older CA verify with the latest watched bundle after a newer CA took over; expired roots leave it', async () => {
    const id = `spiffe://${TD}/agents/rotating`;
    await s.client.createEntry({ entry: { spiffeId: id, selectors: [{ type: 'unix', value: 'uid:42' }] } });
    const watch = watchBundle(pub);
    await watch.next(1);
    const held: HeldSvid[] = [];
    const checks: Check[] = [];
    /** Signing CAs in the order they took over. */
    const signers: string[] = [];
    let renewedAcrossActivation = false;
    const deadline = Date.now() + LOOP_LIMIT_MS;

    while (signers.length < ACTIVATIONS + 1) {
      assert.ok(Date.now() < deadline, `saw ${signers.length - 1} activations before the limit`);
      const { token } = await s.client.createJoinToken({ spiffeId: id });
      const k = newKey();
      const r = await attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr: k.csr,
      });
      const latest = watch.messages.at(-1)!;
      const at = new Date();
      // The new SVID verifies with the bundle the watch delivered before it was issued (prepare is early).
      const fresh = verifyX509Svid(r.svid!.certChain, bundleOf(latest), { at, cache: null });
      const issuer = fresh.chain.at(-1)!.sha256Hex;
      const svid: HeldSvid = {
        index: held.length,
        chain: r.svid!.certChain,
        key: k.key,
        notAfter: ParsedCertificate.fromDer(r.svid!.certChain[0]!).notAfter,
        issuer,
      };
      held.push(svid);
      if (signers.at(-1) !== issuer) {
        assert.ok(!signers.includes(issuer), 'a CA signs again after it was replaced');
        signers.push(issuer);
        if (signers.length >= 2 && !renewedAcrossActivation) {
          renewedAcrossActivation = await renewAnOldSvid(held, signers, latest);
        }
      }
      // Every SVID still valid verifies with the latest watched bundle, whichever CA signed it.
      for (const h of held.filter((v) => v.notAfter.getTime() > at.getTime() + 100)) {
        const v = verifyX509Svid(h.chain, bundleOf(latest), { at, cache: null });
        assert.equal(v.id.toString(), id);
        assert.equal(v.chain.at(-1)!.sha256Hex, h.issuer);
        checks.push({
          svid: h.index,
          issuer: h.issuer,
          signingCa: issuer,
          sequence: latest.bundle!.sequence,
        });
      }
      await sleep(STEP_MS);
    }

    // Each activation: at least one SVID of the CA it replaced verified while the new CA was signing.
    for (let i = 1; i < signers.length; i++) {
      const crossed = checks.filter((c) => c.issuer === signers[i - 1] && c.signingCa === signers[i]);
      assert.ok(
        crossed.length > 0,
        `activation ${i}: no SVID of the previous CA was verified after the new CA took over`,
      );
    }
    assert.ok(renewedAcrossActivation, 'an SVID of a replaced CA renewed into one of the new CA');

    // The first CA has expired (its successors took over twice since): its root leaves the watched bundle,
    // and an SVID it signed no longer verifies with that bundle even at a time it was valid.
    const first = held.find((h) => h.issuer === signers[0])!;
    const removed = await pollFor(() => {
      const m = watch.messages.at(-1)!;
      return rootsOf(m).includes(signers[0]!) ? undefined : m;
    }, 30_000);
    assert.ok(removed, 'the expired root left the watched bundle');
    assert.throws(
      () =>
        verifyX509Svid(first.chain, bundleOf(removed), {
          at: new Date(first.notAfter.getTime() - 1000),
          cache: null,
        }),
      (e: unknown) => isLanyardError(e) && e.code === ErrorCode.UNKNOWN_AUTHORITY,
    );
    assert.ok(rootsOf(removed).includes(signers.at(-1)!), 'the signing CA stays in the bundle');

    const sequences = watch.messages.map((m) => m.bundle!.sequence);
    assert.deepEqual(
      [...sequences].sort((a, b) => a - b),
      sequences,
      'sequence only grows',
    );
    assert.ok(new Set(sequences).size === sequences.length, 'every message is a new sequence');
    watch.cancel();
  });

  /** Renews the newest SVID of the replaced CA, if still valid: the new one is signed by the new CA. */
  async function renewAnOldSvid(
    held: HeldSvid[],
    signers: string[],
    latest: WatchBundleResponse,
  ): Promise<boolean> {
    const old = held
      .filter((h) => h.issuer === signers.at(-2) && h.notAfter.getTime() > Date.now() + 500)
      .at(-1);
    if (old === undefined) return false;
    const mtls = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD, old);
    try {
      const res = await renewCall(mtls, newKey().csr);
      const v = verifyX509Svid(res.svid!.certChain, bundleOf(latest), { cache: null });
      assert.equal(v.chain.at(-1)!.sha256Hex, signers.at(-1));
      return true;
    } catch (e) {
      // The old SVID may have run out while this machine was slow: try at the next activation.
      if (old.notAfter.getTime() <= Date.now()) return false;
      throw e;
    } finally {
      mtls.close();
    }
  }
});

async function pollFor<T>(probe: () => T | undefined, limitMs: number): Promise<T | undefined> {
  const until = Date.now() + limitMs;
  for (;;) {
    const v = probe();
    if (v !== undefined || Date.now() > until) return v;
    await sleep(100);
  }
}
