/**
 * The allow records of Attest and Renew read their SVID fields from the leaf as it was signed (signedLeafFields),
 * not from a parse of its DER (svidFields): the record must be the same either way, for a leaf with an agent
 * context and one without.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { signedLeafFields, svidFields } from '../../../src/server/audit/svid-fields';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { signX509SvidLeaf } from '../../../src/x509/profiles';

interface GoldenCase {
  spiffeId: string;
  publicKeySpki: string;
  ttlSeconds: number;
  now: string;
  agentContextDer?: string;
}

const golden = JSON.parse(
  readFileSync(join(__dirname, '..', '..', 'x509', 'fixtures', 'svid-leaf-golden.json'), 'utf8'),
) as { caKeyPkcs8: string; caCertDer: string; cases: GoldenCase[] };
const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));

describe('audit fields of a signed leaf', () => {
  it('are the fields a parse of its certificate gives, with and without an agent context', () => {
    const issuer = {
      cert: ParsedCertificate.fromDer(b64(golden.caCertDer)),
      key: createPrivateKey(golden.caKeyPkcs8),
    };
    const withContext = golden.cases.filter((c) => c.agentContextDer !== undefined);
    assert.ok(withContext.length > 0 && withContext.length < golden.cases.length);
    for (const c of golden.cases) {
      const leaf = signX509SvidLeaf({
        spiffeId: c.spiffeId,
        publicKey: createPublicKey({
          key: Buffer.from(c.publicKeySpki, 'base64'),
          format: 'der',
          type: 'spki',
        }),
        issuer,
        ttlSeconds: c.ttlSeconds,
        now: new Date(c.now),
        ...(c.agentContextDer !== undefined && { agentContextDer: b64(c.agentContextDer) }),
      });
      const fields = signedLeafFields(leaf);
      assert.deepEqual(fields, svidFields(leaf.der), c.spiffeId);
      assert.equal(fields.subject, c.spiffeId);
      if (c.agentContextDer !== undefined)
        assert.ok(fields.agentId !== undefined && fields.sessionId !== undefined);
    }
  });
});
