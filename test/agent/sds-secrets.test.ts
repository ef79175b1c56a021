/** The SDS secrets a caller may have (src/agent/sds/secrets.ts): names, aliases, refusals, versions. */
import * as assert from 'node:assert/strict';
import { ErrorCode, isLanyardError } from '../../src/errors';
import { Secret } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/secret';
import { SPIFFECertValidatorConfig } from '../../src/gen/envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config';
import type { Entitlement } from '../../src/agent/cache';
import { secretsFor, selectSecrets, SECRET_TYPE_URL, versionOf } from '../../src/agent/sds/secrets';
import { toX509Svid } from '../../src/svid/x509-svid';
import { createPki, issueSvid, type TrustDomainPki } from '../support/pki';

// Built when the tests run, not when mocha loads the file: certificates made at load can expire by the time a
// slow run reaches them.
let ours: TrustDomainPki;
let partner: TrustDomainPki;

function entitlement(id: string): Entitlement {
  const s = issueSvid(ours, id);
  return {
    entry: { id: id, spiffeId: id, selectors: [{ type: 'unix', value: 'uid:1' }], revision: 1 },
    svid: toX509Svid(s.chain, s.key.privateKey),
  };
}

const decode = (any: { typeUrl: string; value: Buffer }): Secret => {
  assert.equal(any.typeUrl, SECRET_TYPE_URL);
  return Secret.decode(any.value);
};

describe('agent SDS secrets', () => {
  let a: Entitlement;
  let b: Entitlement;
  before(() => {
    ours = createPki('ours.test');
    partner = createPki('partner.test');
    a = entitlement('spiffe://ours.test/a');
    b = entitlement('spiffe://ours.test/b');
  });

  it('names each SVID by its SPIFFE ID, the first also "default", and each bundle by its trust domain ID', () => {
    const set = secretsFor([a, b], ours.bundle, [partner.bundle]);
    assert.deepEqual(set.wildcard, [
      'spiffe://ours.test/a',
      'spiffe://ours.test/b',
      'spiffe://ours.test',
      'spiffe://partner.test',
    ]);
    const [def, rootca, partnerCa] = selectSecrets(set, ['default', 'ROOTCA', 'spiffe://partner.test']).map(
      decode,
    );
    assert.equal(def!.name, 'default');
    assert.equal(def!.type?.$case, 'tlsCertificate');
    assert.equal(rootca!.type?.$case, 'validationContext');
    assert.equal(partnerCa!.type?.$case, 'validationContext');
    if (partnerCa!.type?.$case !== 'validationContext') return;
    const ca = partnerCa!.type.value.trustedCa?.specifier;
    assert.equal(ca?.$case === 'inlineBytes' && ca.value.toString(), partner.bundle.toPem());
  });

  it('ALL is the SPIFFE validator with one bundle per trust domain, never one pool of every CA', () => {
    const [all] = selectSecrets(secretsFor([a], ours.bundle, [partner.bundle]), ['ALL']).map(decode);
    assert.equal(all!.type?.$case, 'validationContext');
    if (all!.type?.$case !== 'validationContext') return;
    assert.equal(all!.type.value.trustedCa, undefined);
    const custom = all!.type.value.customValidatorConfig!;
    assert.equal(custom.name, 'envoy.tls.cert_validator.spiffe');
    const cfg = SPIFFECertValidatorConfig.decode(custom.typedConfig!.value);
    assert.deepEqual(
      cfg.trustDomains.map((d) => d.name),
      ['ours.test', 'partner.test'],
    );
  });

  it('refuses names the caller may not have, naming them, with INVALID_ARGUMENT', () => {
    const set = secretsFor([a], ours.bundle, []);
    assert.throws(
      () => selectSecrets(set, ['default', 'spiffe://ours.test/b', 'spiffe://partner.test']),
      (e: unknown) =>
        isLanyardError(e) &&
        e.code === ErrorCode.INVALID_ARGUMENT &&
        e.message.startsWith('no secret "spiffe://ours.test/b", "spiffe://partner.test" for this workload'),
    );
  });

  it('a version changes exactly when the content does', () => {
    const one = selectSecrets(secretsFor([a], ours.bundle, []), ['default']);
    const same = selectSecrets(secretsFor([a], ours.bundle, []), ['default']);
    const rotated = selectSecrets(secretsFor([entitlement('spiffe://ours.test/a')], ours.bundle, []), [
      'default',
    ]);
    assert.equal(versionOf(one), versionOf(same));
    assert.notEqual(versionOf(one), versionOf(rotated));
  });
});
