import assert from 'node:assert/strict';
import * as lanyard from '../src';

describe('package root', () => {
  it('exports what a verifying service needs', () => {
    for (const name of [
      'SpiffeId',
      'TrustDomain',
      'X509Bundle',
      'BundleSet',
      'parseSpiffeBundle',
      'toSpiffeBundle',
      'ParsedCertificate',
      'parseX509Svid',
      'readAgentContext',
      'verifyX509Svid',
      'authorizeId',
      'requireScopes',
      'StaticRevocationList',
      'LanyardError',
      'RevokedError',
    ] as const) {
      assert.equal(typeof lanyard[name], 'function', `${name} is exported`);
    }
  });

  it('keeps internals and the workload side out (they are subpaths or not exported)', () => {
    const exported = new Set(Object.keys(lanyard));
    for (const name of [
      'GrpcStatus',
      'emptyHead',
      'genesisHash',
      'nextRecord',
      'signWithKey',
      'spkiDer',
      'sha256Hex',
      'canonicalJson',
      'verifyChain',
      'generateKeyPair',
      'agentOf',
      'ServerX509Source',
      'hopService',
      'PolicyEngine',
      'initDevCa',
    ]) {
      assert.ok(!exported.has(name), `${name} is not exported from the root`);
    }
  });
});
