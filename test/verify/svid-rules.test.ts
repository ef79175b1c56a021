import assert from 'node:assert/strict';
import { id_kp_clientAuth, id_kp_codeSigning, id_kp_serverAuth } from '@peculiar/asn1-x509';
import { X509Bundle } from '../../src/bundle';
import { ErrorCode } from '../../src/errors';
import { TrustDomain } from '../../src/spiffe';
import { verifyX509Svid } from '../../src/verify';
import { checkSvidLeaf, spiffeIdOfLeaf } from '../../src/svid/rules';
import { CertSpec, makeLeaf, makeRoot, NOW } from '../support/pki';
import { expectRefusal } from '../support/refusal';

const TD = 'example.org';
const ID = 'spiffe://example.org/workload';

describe('X509-SVID leaf rules', () => {
  const root = makeRoot(TD);
  const bundle = new X509Bundle(TrustDomain.parse(TD), { x509Authorities: [root.cert] });
  const verifyLeaf = (spec: Partial<CertSpec>, id = ID) =>
    verifyX509Svid([makeLeaf(id, root, spec).cert], bundle, { at: NOW, cache: null });

  it('accepts a leaf in the X509-SVID profile and returns its SPIFFE ID', () => {
    assert.equal(verifyLeaf({}).id.toString(), ID);
  });

  describe('URI SAN', () => {
    it('rejects a leaf without a URI SAN', () => {
      expectRefusal(() => verifyLeaf({ uris: [] }), ErrorCode.SVID_INVALID, /exactly one URI SAN, it has 0/);
    });
    it('rejects a leaf with two URI SANs', () => {
      expectRefusal(
        () => verifyLeaf({ uris: [ID, 'spiffe://example.org/other'] }),
        ErrorCode.SVID_INVALID,
        /exactly one URI SAN, it has 2/,
      );
    });
    it('accepts DNS SANs next to the one URI SAN', () => {
      assert.equal(verifyLeaf({ dns: ['workload.example.org'] }).id.toString(), ID);
    });
    it('rejects a URI SAN that is not a valid SPIFFE ID', () => {
      expectRefusal(
        () => verifyLeaf({}, 'https://example.org/workload'),
        ErrorCode.SVID_INVALID,
        /not a valid SPIFFE ID/,
      );
      expectRefusal(() => verifyLeaf({}, 'spiffe://Example.org/workload'), ErrorCode.SVID_INVALID);
      expectRefusal(() => verifyLeaf({}, 'spiffe://example.org/a/../b'), ErrorCode.SVID_INVALID);
    });
    it('reads each leaf ID afresh after the last one was accepted (the verifier keeps the last ID read)', () => {
      // Each refusal comes right after an accepted leaf, so the kept ID is the accepted one.
      const after = (spec: Partial<CertSpec>, id: string): (() => unknown) => {
        verifyLeaf({});
        return () => verifyLeaf(spec, id);
      };
      expectRefusal(after({}, 'spiffe://example.org/workload/'), ErrorCode.SVID_INVALID, /not a valid/);
      expectRefusal(after({}, 'spiffe://example.org'), ErrorCode.SVID_INVALID, /no path/);
      expectRefusal(after({ uris: [ID, ID] }, ID), ErrorCode.SVID_INVALID, /it has 2/);
      expectRefusal(after({ uris: [] }, ID), ErrorCode.SVID_INVALID, /it has 0/);
      assert.equal(verifyLeaf({}, 'spiffe://example.org/other').id.toString(), 'spiffe://example.org/other');
    });
    it('rejects the SPIFFE ID of a trust domain (no path) on a leaf', () => {
      expectRefusal(() => verifyLeaf({}, 'spiffe://example.org'), ErrorCode.SVID_INVALID, /no path/);
    });
  });

  describe('basic constraints', () => {
    it('rejects a leaf with cA=true', () => {
      expectRefusal(() => verifyLeaf({ basicConstraints: { ca: true } }), ErrorCode.SVID_INVALID, /is a CA/);
    });
    it('accepts a leaf without basicConstraints (cA defaults to false)', () => {
      verifyLeaf({ basicConstraints: null });
    });
  });

  describe('key usage', () => {
    it('rejects a leaf without keyUsage', () => {
      expectRefusal(() => verifyLeaf({ keyUsage: null }), ErrorCode.SVID_INVALID, /no keyUsage/);
    });
    it('rejects a leaf without digitalSignature', () => {
      expectRefusal(
        () => verifyLeaf({ keyUsage: ['keyEncipherment'] }),
        ErrorCode.SVID_INVALID,
        /digitalSignature/,
      );
    });
    it('rejects a leaf with keyCertSign', () => {
      // Path validation refuses it first (RFC 5280 §4.2.1.9: keyCertSign only with cA); the SVID rule stands.
      expectRefusal(
        () => verifyLeaf({ keyUsage: ['digitalSignature', 'keyCertSign'] }),
        ErrorCode.KEY_USAGE_INVALID,
        /keyCertSign but is not a CA/,
      );
      expectRefusal(
        () => checkSvidLeaf(makeLeaf(ID, root, { keyUsage: ['digitalSignature', 'keyCertSign'] }).cert),
        ErrorCode.SVID_INVALID,
        /keyCertSign/,
      );
    });
    it('rejects a leaf with cRLSign', () => {
      expectRefusal(
        () => verifyLeaf({ keyUsage: ['digitalSignature', 'cRLSign'] }),
        ErrorCode.SVID_INVALID,
        /cRLSign/,
      );
    });
    it('accepts keyEncipherment and keyAgreement next to digitalSignature', () => {
      verifyLeaf({ keyUsage: ['digitalSignature', 'keyEncipherment', 'keyAgreement'] });
    });
  });

  describe('extended key usage', () => {
    it('accepts a leaf without extKeyUsage', () => {
      const leaf = makeLeaf(ID, root, { eku: undefined });
      assert.equal(leaf.cert.extKeyUsage, undefined);
      verifyX509Svid([leaf.cert], bundle, { at: NOW, cache: null });
    });
    it('rejects an extKeyUsage without clientAuth', () => {
      expectRefusal(
        () => verifyLeaf({ eku: [id_kp_serverAuth] }),
        ErrorCode.SVID_INVALID,
        /lacks clientAuth/,
      );
    });
    it('rejects an extKeyUsage without serverAuth', () => {
      expectRefusal(
        () => verifyLeaf({ eku: [id_kp_clientAuth] }),
        ErrorCode.SVID_INVALID,
        /lacks serverAuth/,
      );
    });
    it('rejects an extKeyUsage with neither', () => {
      expectRefusal(
        () => verifyLeaf({ eku: [id_kp_codeSigning] }),
        ErrorCode.SVID_INVALID,
        /serverAuth and clientAuth/,
      );
    });
    it('accepts serverAuth and clientAuth with other purposes', () => {
      verifyLeaf({ eku: [id_kp_codeSigning, id_kp_clientAuth, id_kp_serverAuth] });
    });
  });

  it('exposes the rules on their own', () => {
    const leaf = makeLeaf(ID, root).cert;
    assert.equal(spiffeIdOfLeaf(leaf).toString(), ID);
    checkSvidLeaf(leaf);
    expectRefusal(() => checkSvidLeaf(root.cert), ErrorCode.SVID_INVALID);
  });
});
