/**
 * OpenSSL, which knows nothing of Lanyard, accepts the certificates Lanyard mints.
 *
 * test/integration/interop/x509-openssl.test.ts already runs `openssl verify -x509_strict -purpose sslclient|sslserver` over
 * root -> intermediate -> SVID for every key type with a placeholder DER standing in for the agent context.
 * This file covers what that one does not: leaves that carry a real agent context (encoded by the production
 * codec) with a delegation link signed by the parent session's own key of the same type, checked by both
 * OpenSSL and our verifier; OpenSSL's independent ASN.1 parser reading that extension; a root with the same
 * name as the real one but another key; and an SVID issued in the past, judged at times given by `-attime`.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCode } from '../../../src/errors';
import { verifyX509Svid } from '../../../src/verify';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../../src/x509/agent-context';
import { KeyAlgorithm } from '../../../src/x509/keys';
import { openssl, OpensslResult, writeTemp } from '../../support/x509';
import { certsPem, createPki, delegatedPair, issueSvid, Svid, TrustDomainPki } from '../../support/pki';
import { removeDir, tempDir } from '../../support/tmp';
import { expectRefusal } from '../../support/refusal';

const TD = 'example.org';
const PURPOSES = ['sslclient', 'sslserver'] as const;
type Purpose = (typeof PURPOSES)[number];

interface ChainFiles {
  root: string;
  intermediate: string;
  leaf: string;
}

function writeChain(dir: string, label: string, pki: TrustDomainPki, svid: Svid): ChainFiles {
  return {
    root: writeTemp(dir, `${label}-root.pem`, certsPem([pki.root.cert])),
    intermediate: writeTemp(dir, `${label}-intermediate.pem`, certsPem([pki.intermediate.cert])),
    leaf: writeTemp(dir, `${label}-leaf.pem`, certsPem([svid.cert])),
  };
}

function opensslVerify(
  files: ChainFiles,
  purpose: Purpose,
  extra: { root?: string; attime?: Date } = {},
): OpensslResult {
  return openssl([
    'verify',
    '-x509_strict',
    '-purpose',
    purpose,
    ...(extra.attime !== undefined ? ['-attime', String(Math.floor(extra.attime.getTime() / 1000))] : []),
    '-CAfile',
    extra.root ?? files.root,
    '-untrusted',
    files.intermediate,
    files.leaf,
  ]);
}

function assertOpensslAccepts(files: ChainFiles, extra: { attime?: Date } = {}): void {
  for (const purpose of PURPOSES) {
    const r = opensslVerify(files, purpose, extra);
    assert.ok(r.ok, `openssl verify -purpose ${purpose}: ${r.output}`);
    assert.match(r.output, /leaf\.pem: OK/);
  }
}

function assertOpensslRejects(
  files: ChainFiles,
  reason: RegExp,
  extra: { root?: string; attime?: Date },
): void {
  for (const purpose of PURPOSES) {
    const r = opensslVerify(files, purpose, extra);
    assert.ok(!r.ok, `openssl verify -purpose ${purpose} must fail: ${r.output}`);
    assert.match(r.output, reason);
  }
}

describe('interop: openssl verify accepts the certificates Lanyard mints', () => {
  let dir: string;
  before(() => {
    dir = tempDir('interop-openssl-verifies');
  });
  after(() => removeDir(dir));

  const algorithms: KeyAlgorithm[] = ['ec-p256', 'ec-p384', 'rsa-2048', 'ed25519'];
  for (const alg of algorithms) {
    it(`${alg}: a delegated session SVID carrying the agent context passes -x509_strict for sslclient and sslserver`, () => {
      const pki = createPki(TD, { alg });
      const { parent, child } = delegatedPair(
        pki,
        { name: 'planner', scopes: ['docs:read', 'docs:write'], ttlSeconds: 3600 },
        { name: 'retrieval', scopes: ['docs:read'], ttlSeconds: 1800 },
        { alg },
      );
      // Not vacuous: the chain and the delegation link are valid for Lanyard too, signature of the link included.
      const verified = verifyX509Svid(child.chain, pki.bundle, { cache: null });
      assert.equal(verified.id.toString(), 'spiffe://example.org/agent/retrieval');
      assert.equal(verified.context?.delegation.length, 1);
      assert.equal(verified.context?.delegation[0]?.spiffeId, parent.id);
      assert.ok(child.cert.extension(DEFAULT_AGENT_CONTEXT_OID)?.critical === false);

      assertOpensslAccepts(writeChain(dir, `delegated-${alg}`, pki, child));
      // The parent session's SVID (a context without delegation) is accepted as well.
      assertOpensslAccepts(writeChain(dir, `parent-${alg}`, pki, parent));
    });
  }

  it("OpenSSL's own ASN.1 parser reads the agent-context extension value as well-formed DER", () => {
    const pki = createPki(TD);
    const { parent, child } = delegatedPair(
      pki,
      { name: 'planner', scopes: ['docs:read', 'tools:run'], ttlSeconds: 3600 },
      { name: 'tool-runner', scopes: ['tools:run'], ttlSeconds: 1800 },
    );
    const value = child.cert.extension(DEFAULT_AGENT_CONTEXT_OID)?.value;
    assert.ok(value !== undefined);
    const file = join(dir, 'context.der');
    writeFileSync(file, value);
    const r = openssl(['asn1parse', '-inform', 'DER', '-in', file]);
    assert.ok(r.ok, r.output);
    assert.doesNotMatch(r.output, /error/i);
    // The leaf's own fields and the parent hop of the delegation link, as OpenSSL decoded them.
    assert.match(r.output, /UTF8STRING\s+:tool-runner\b/);
    assert.match(r.output, /UTF8STRING\s+:session-planner\b/);
    assert.match(r.output, /UTF8STRING\s+:spiffe:\/\/example\.org\/agent\/planner\b/);
    assert.match(r.output, /UTF8STRING\s+:spiffe:\/\/example\.org\/agent\/tool-runner\b/);
    assert.match(r.output, /GENERALIZEDTIME/);
    // The parent's SubjectPublicKeyInfo and its signature over the binding, byte for byte.
    const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex').toUpperCase();
    assert.ok(r.output.includes(`[HEX DUMP]:${hex(parent.cert.spkiDer)}`), 'parent key in the link');
    const signature = child.context.delegation[0]?.signature;
    assert.ok(signature !== undefined);
    assert.ok(r.output.includes(`[HEX DUMP]:${hex(signature)}`), 'link signature');
  });

  it('a root with the same name as the real root but another key is refused by OpenSSL and by Lanyard', () => {
    const pki = createPki(TD);
    const impostor = createPki(TD);
    assert.deepEqual(impostor.root.cert.subjectDer, pki.root.cert.subjectDer, 'same subject DN');
    const { child } = delegatedPair(
      pki,
      { name: 'planner', scopes: ['docs:read'], ttlSeconds: 3600 },
      { name: 'retrieval', scopes: ['docs:read'], ttlSeconds: 1800 },
    );
    const files = writeChain(dir, 'real', pki, child);
    const impostorRoot = writeTemp(dir, 'impostor-root.pem', certsPem([impostor.root.cert]));
    assertOpensslRejects(files, /unable to get local issuer certificate/, {
      root: impostorRoot,
    });
    assertOpensslAccepts(files);
    // Same verdict from Lanyard: the name matches, the signature does not.
    expectRefusal(
      () => verifyX509Svid(child.chain, impostor.bundle, { cache: null }),
      ErrorCode.SIGNATURE_INVALID,
    );
  });

  it('an SVID issued in the past passes -attime inside its validity and fails after its notAfter', () => {
    const hour = 3600_000;
    // CAs valid from two days ago for four days; the SVID lived for one hour, ending an hour ago.
    const pki = createPki(TD, { now: new Date(Date.now() - 48 * hour), ttlSeconds: 4 * 24 * 3600 });
    const issuedAt = new Date(Date.now() - 2 * hour);
    const svid = issueSvid(pki, 'spiffe://example.org/agent/expired', { now: issuedAt, ttlSeconds: 3600 });
    const files = writeChain(dir, 'expired', pki, svid);
    const during = new Date(issuedAt.getTime() + 30 * 60_000);
    const after = new Date(svid.cert.notAfter.getTime() + 60_000);
    assert.ok(after.getTime() < Date.now());

    assertOpensslAccepts(files, { attime: during });
    assertOpensslRejects(files, /certificate has expired/, { attime: after });
    // Without -attime OpenSSL uses the clock: also expired.
    for (const purpose of PURPOSES)
      assert.match(opensslVerify(files, purpose).output, /certificate has expired/);

    // Lanyard judges the same certificate the same way at the same instants.
    verifyX509Svid(svid.chain, pki.bundle, { at: during, cache: null });
    expectRefusal(
      () => verifyX509Svid(svid.chain, pki.bundle, { at: after, cache: null }),
      ErrorCode.SVID_EXPIRED,
    );
    expectRefusal(() => verifyX509Svid(svid.chain, pki.bundle, { cache: null }), ErrorCode.SVID_EXPIRED);
  });
});
