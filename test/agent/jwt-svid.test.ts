/** JWT-SVIDs: what the server's JWT authority signs, and every rule ValidateJWTSVID enforces (negative cases). */
import * as assert from 'node:assert/strict';
import { constants, generateKeyPairSync, sign } from 'node:crypto';
import { validateJwtSvid } from '../../src/agent/jwt-svid';
import { X509Bundle } from '../../src/bundle';
import { MemoryKeyManager } from '../../src/ca';
import { JwtAuthority } from '../../src/server/node/jwt-authority';
import { TrustDomain } from '../../src/spiffe';

const TD = TrustDomain.parse('lanyard.local');
const NOW = new Date('2026-11-26T12:00:00Z');
const iat = Math.floor(NOW.getTime() / 1000);

describe('node agent: JWT-SVID signing and validation', () => {
  let authority: JwtAuthority;
  let bundle: X509Bundle;
  const bundleFor = (td: TrustDomain): X509Bundle | undefined => (td.name === TD.name ? bundle : undefined);
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

  before(async () => {
    authority = await JwtAuthority.open(new MemoryKeyManager());
    bundle = new X509Bundle(TD, { jwtAuthorities: [[authority.keyId, authority.publicKey]] });
  });

  const token = (claims: Record<string, unknown> = {}): string =>
    authority.sign({
      sub: 'spiffe://lanyard.local/workload/a',
      aud: ['api'],
      iat,
      exp: iat + 300,
      ...claims,
    } as never);

  it('accepts a token for its audience and returns the SPIFFE ID and claims', () => {
    const v = validateJwtSvid(token(), 'api', bundleFor, NOW);
    assert.equal(v.spiffeId.toString(), 'spiffe://lanyard.local/workload/a');
    assert.deepEqual(v.claims.aud, ['api']);
    const header = JSON.parse(Buffer.from(token().split('.')[0]!, 'base64url').toString()) as Record<
      string,
      string
    >;
    assert.deepEqual(header, { alg: 'ES256', kid: authority.keyId, typ: 'JWT' });
  });

  const refused = (t: string, audience: string, fragment: RegExp, at = NOW): void => {
    assert.throws(
      () => validateJwtSvid(t, audience, bundleFor, at),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, 'ERR_JWT_SVID_INVALID');
        assert.match(e.message, fragment);
        return true;
      },
    );
  };

  it('refuses another audience, an expired or not-yet-valid token, and a missing exp or aud', () => {
    refused(token(), 'other', /audience other/);
    refused(token(), 'api', /expired/, new Date((iat + 301) * 1000));
    refused(token({ nbf: iat + 60 }), 'api', /not yet valid/);
    refused(token({ exp: undefined }), 'api', /exp is required/);
    refused(token({ aud: [] }), 'api', /aud is required/);
  });

  it('refuses a sub that is not a SPIFFE ID or belongs to a trust domain without JWT keys', () => {
    refused(token({ sub: 'alice' }), 'api', /not a SPIFFE ID/);
    refused(token({ sub: 'spiffe://other.example/w' }), 'api', /no JWT authority/);
  });

  it('refuses a forged signature, an unknown kid, alg none, HS256 and an RSA alg on the EC key', () => {
    const [h, p] = token().split('.') as [string, string];
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = sign('sha256', Buffer.from(`${h}.${p}`), {
      key: other.privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    refused(`${h}.${p}.${forged.toString('base64url')}`, 'api', /signature/);
    refused(
      `${b64({ alg: 'ES256', kid: 'nope' })}.${p}.${forged.toString('base64url')}`,
      'api',
      /no JWT authority/,
    );
    refused(`${b64({ alg: 'none', kid: authority.keyId })}.${p}.`, 'api', /alg "none"/);
    refused(`${b64({ alg: 'HS256', kid: authority.keyId })}.${p}.AAAA`, 'api', /alg "HS256"/);
    refused(`${b64({ alg: 'RS256', kid: authority.keyId })}.${p}.AAAA`, 'api', /does not fit/);
    refused(`${b64({ alg: 'ES256' })}.${p}.AAAA`, 'api', /kid is required/);
    refused('a.b', 'api', /three/);
    refused(`${h}.${p}.${'A'.repeat(20_000)}`, 'api', /too long/);
  });
  it('PS384/PS512: accepts the RFC 7518 salt (the hash length) and refuses a 32-byte salt', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaBundle = new X509Bundle(TD, { jwtAuthorities: [['rsa-1', rsa.publicKey]] });
    const payload = b64({ sub: 'spiffe://lanyard.local/workload/a', aud: ['api'], iat, exp: iat + 300 });
    const signed = (alg: string, hash: string, saltLength: number): string => {
      const h = b64({ alg, kid: 'rsa-1', typ: 'JWT' });
      const sig = sign(hash, Buffer.from(`${h}.${payload}`), {
        key: rsa.privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength,
      });
      return `${h}.${payload}.${sig.toString('base64url')}`;
    };
    const forRsa = (td: TrustDomain): X509Bundle | undefined => (td.name === TD.name ? rsaBundle : undefined);
    for (const [alg, hash, len] of [
      ['PS256', 'sha256', 32],
      ['PS384', 'sha384', 48],
      ['PS512', 'sha512', 64],
    ] as const) {
      const v = validateJwtSvid(signed(alg, hash, len), 'api', forRsa, NOW);
      assert.equal(v.spiffeId.toString(), 'spiffe://lanyard.local/workload/a');
    }
    for (const [alg, hash] of [
      ['PS384', 'sha384'],
      ['PS512', 'sha512'],
    ] as const) {
      assert.throws(() => validateJwtSvid(signed(alg, hash, 32), 'api', forRsa, NOW), {
        code: 'ERR_JWT_SVID_INVALID',
        message: /signature/,
      });
    }
  });
});
