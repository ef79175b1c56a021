import assert from 'node:assert/strict';
import * as lanyard from '../src';

describe('package root', () => {
  it('exports the verifier-side library without the server', () => {
    for (const name of [
      'SpiffeId',
      'TrustDomain',
      'X509Bundle',
      'BundleSet',
      'parseSpiffeBundle',
      'toSpiffeBundle',
      'ParsedCertificate',
      'issueX509Svid',
      'parseCsr',
      'encodeAgentContext',
      'decodeAgentContext',
      'verifyX509Svid',
      'validateCertPath',
      'authorizeId',
      'requireScopes',
      'StaticRevocationList',
      'LanyardError',
    ] as const) {
      assert.equal(typeof lanyard[name], 'function', `${name} is exported`);
    }
  });
});
