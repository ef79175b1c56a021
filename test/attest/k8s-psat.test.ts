import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { K8sPsatAttestor, type K8sPsatClusterConfig } from '../../src/attest';
import { ErrorCode } from '../../src/errors';
import { GrpcStatus, grpcStatusOf } from '../../src/internal/grpc-status-map';
import { mustNotChallenge } from './helpers/channels';
import {
  base64urlJson,
  type IssuerKey,
  issuerKey,
  jwksOf,
  psatClaims,
  signJwt,
  unsignedJwt,
} from '../support/jwt';
import { rejectsWithCode } from '../support/refusal';

const NOW = new Date('2030-06-01T12:00:00Z');
const NOW_S = NOW.getTime() / 1000;
const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const enc = (s: string) => new TextEncoder().encode(s);

describe('k8s_psat attestor (locally generated issuer keys, JWKS on disk)', () => {
  let dir: string;
  let rsa: IssuerKey;
  let ec: IssuerKey;
  let jwksFile: string;
  let cluster: K8sPsatClusterConfig;
  let attestor: K8sPsatAttestor;
  let clockMs: number;

  before(() => {
    rsa = issuerKey('RS256');
    ec = issuerKey('ES256');
  });

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-attest-k8s-'));
    jwksFile = path.join(dir, 'prod-jwks.json');
    fs.writeFileSync(jwksFile, jwksOf(rsa, ec));
    cluster = { name: 'prod', audience: 'lanyard', jwksFile, issuer: ISSUER };
    clockMs = 0;
    attestor = await K8sPsatAttestor.fromConfig([cluster], { clockMs: () => clockMs });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const attest = (token: string, now = NOW, a = attestor) => a.attest(enc(token), mustNotChallenge, now);

  it('success (RS256): every selector, the evidence digest, an agent hint, re-attestable', async () => {
    const token = signJwt(psatClaims(NOW_S), rsa);
    const r = await attest(token);
    assert.deepEqual(
      r.selectors.map((s) => `${s.type}:${s.value}`),
      [
        'k8s:cluster:prod',
        'k8s:ns:payments',
        'k8s:sa:api',
        'k8s:sa-uid:9a8b7c6d-0000-4000-8000-000000000002',
        'k8s:pod-name:web-0',
        'k8s:pod-uid:0d7f4a56-0000-4000-8000-000000000001',
        'k8s:node-name:node-a',
        'k8s:node-uid:6f1c0c1e-0000-4000-8000-00000000000a',
      ],
    );
    assert.deepEqual(Buffer.from(r.evidenceSha256), createHash('sha256').update(token).digest());
    assert.equal(r.agentIdHint, 'k8s_psat/prod/0d7f4a56-0000-4000-8000-000000000001');
    assert.equal(r.canReattest, true);
    assert.equal(r.boundSpiffeId, undefined);
  });

  it('success (ES256 and ES384), with `aud` as a plain string, and without the node claim of older clusters', async () => {
    const claims = psatClaims(NOW_S, { aud: 'lanyard' });
    delete (claims['kubernetes.io'] as Record<string, unknown>).node;
    const r = await attest(signJwt(claims, ec));
    assert.ok(!r.selectors.some((s) => s.value.startsWith('node-')));
    assert.ok(r.selectors.some((s) => s.value === 'pod-name:web-0'));

    const p384 = issuerKey('ES384');
    fs.writeFileSync(jwksFile, jwksOf(rsa, ec, p384));
    assert.ok((await attest(signJwt(psatClaims(NOW_S), p384))).selectors.length > 0);
  });

  it('wrong audience: ERR_TOKEN_AUDIENCE_MISMATCH naming both audiences', async () => {
    const e = await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S, { aud: ['vault', 'https://kubernetes.default.svc'] }), rsa)),
      ErrorCode.TOKEN_AUDIENCE_MISMATCH,
      /audience \["vault", "https:\/\/kubernetes.default.svc"\] does not include "lanyard".*another service/,
    );
    assert.equal(grpcStatusOf(e), GrpcStatus.UNAUTHENTICATED);
  });

  it('wrong issuer: ERR_TOKEN_ISSUER_MISMATCH, a distinct message', async () => {
    await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S, {}, 'https://oidc.other.example'), rsa)),
      ErrorCode.TOKEN_ISSUER_MISMATCH,
      /issuer "https:\/\/oidc.other.example" is not the issuer "https:\/\/kubernetes.default.svc.cluster.local" of cluster "prod"/,
    );
  });

  it('expired: ERR_TOKEN_EXPIRED past exp + 60 s leeway, accepted within it', async () => {
    const claims = psatClaims(NOW_S, { exp: NOW_S - 30 });
    await attest(signJwt(claims, rsa)); // 30 s late: within leeway
    await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S, { exp: NOW_S - 61 }), rsa)),
      ErrorCode.TOKEN_EXPIRED,
      /token expired at 2030-06-01T11:58:59.000Z/,
    );
  });

  it('not yet valid: ERR_TOKEN_NOT_YET_VALID for nbf (or iat) beyond the leeway', async () => {
    await attest(signJwt(psatClaims(NOW_S, { nbf: NOW_S + 30, iat: NOW_S + 30 }), rsa));
    const e = await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S, { nbf: NOW_S + 120 }), rsa)),
      ErrorCode.TOKEN_NOT_YET_VALID,
      /not valid before/,
    );
    assert.equal(grpcStatusOf(e), GrpcStatus.UNAUTHENTICATED);
    await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S, { iat: NOW_S + 120 }), rsa)),
      ErrorCode.TOKEN_NOT_YET_VALID,
      /issued in the future/,
    );
  });

  it('signature by an unknown key: ERR_UNKNOWN_AUTHORITY', async () => {
    const stranger = issuerKey('RS256', 'kid-stranger');
    await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S), stranger)),
      ErrorCode.UNKNOWN_AUTHORITY,
      /kid "kid-stranger"\) that no configured cluster trusts \("prod"\)/,
    );
    // Without a kid every key is tried, and none verifies.
    await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S), stranger, { alg: 'RS256' })),
      ErrorCode.UNKNOWN_AUTHORITY,
    );
  });

  it('tampered payload: ERR_SIGNATURE_INVALID', async () => {
    const [h, , s] = signJwt(psatClaims(NOW_S), rsa).split('.');
    const forged = psatClaims(NOW_S, {}, ISSUER);
    (forged['kubernetes.io'] as Record<string, unknown>).namespace = 'kube-system';
    await rejectsWithCode(
      attest(`${h}.${base64urlJson(forged)}.${s}`),
      ErrorCode.SIGNATURE_INVALID,
      /does not verify with key "kid-\d+" of cluster "prod"/,
    );
  });

  it('alg=none and HS256 signed with the public key: ERR_UNSUPPORTED_ALGORITHM', async () => {
    await rejectsWithCode(attest(unsignedJwt(psatClaims(NOW_S))), ErrorCode.UNSUPPORTED_ALGORITHM, /"none"/);
    const { createHmac } = await import('node:crypto');
    const input = `${base64urlJson({ alg: 'HS256', kid: rsa.kid })}.${base64urlJson(psatClaims(NOW_S))}`;
    const mac = createHmac('sha256', JSON.stringify(rsa.jwk)).update(input).digest('base64url');
    await rejectsWithCode(attest(`${input}.${mac}`), ErrorCode.UNSUPPORTED_ALGORITHM, /"HS256"/);
  });

  it('an RS256 header on an EC key (algorithm confusion) does not verify', async () => {
    const token = signJwt(psatClaims(NOW_S), ec, { alg: 'ES256', kid: ec.kid });
    const [, p, s] = token.split('.');
    await rejectsWithCode(
      attest(`${base64urlJson({ alg: 'RS256', kid: ec.kid })}.${p}.${s}`),
      ErrorCode.SIGNATURE_INVALID,
    );
  });

  it("a token from another cluster's key: unknown key, or the same kid with another key", async () => {
    const otherCluster = issuerKey('RS256');
    await rejectsWithCode(attest(signJwt(psatClaims(NOW_S), otherCluster)), ErrorCode.UNKNOWN_AUTHORITY);
    // Kids are not secrets: a key that reuses ours is still not ours.
    const impostor = { ...issuerKey('RS256'), kid: rsa.kid };
    await rejectsWithCode(attest(signJwt(psatClaims(NOW_S), impostor)), ErrorCode.SIGNATURE_INVALID);
  });

  it('two clusters: the key that signed decides the cluster; its issuer must match', async () => {
    const stagingKey = issuerKey('ES256');
    const stagingJwks = path.join(dir, 'staging-jwks.json');
    fs.writeFileSync(stagingJwks, jwksOf(stagingKey));
    const two = await K8sPsatAttestor.fromConfig([
      cluster,
      {
        name: 'staging',
        audience: 'lanyard-staging',
        jwksFile: stagingJwks,
        issuer: 'https://staging.example',
      },
    ]);
    const r = await attest(
      signJwt(psatClaims(NOW_S, { aud: 'lanyard-staging' }, 'https://staging.example'), stagingKey),
      NOW,
      two,
    );
    assert.ok(r.selectors.some((s) => s.value === 'cluster:staging'));
    // Staging's key claiming prod's issuer: staging signed it, and staging's issuer is not that one.
    await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S, { aud: 'lanyard-staging' }), stagingKey), NOW, two),
      ErrorCode.TOKEN_ISSUER_MISMATCH,
      /of cluster "staging", whose key signed it/,
    );
    // Staging's token carries staging's audience, not prod's: refused when the audience is prod's.
    await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S, {}, 'https://staging.example'), stagingKey), NOW, two),
      ErrorCode.TOKEN_AUDIENCE_MISMATCH,
      /required by cluster "staging"/,
    );
  });

  it('key rotation: a rewritten JWKS is re-read before use; a removed key stops working', async () => {
    const next = issuerKey('ES256');
    fs.writeFileSync(jwksFile, jwksOf(rsa, ec, next));
    assert.ok((await attest(signJwt(psatClaims(NOW_S), next))).selectors.length > 0);

    fs.writeFileSync(jwksFile, jwksOf(next));
    await rejectsWithCode(attest(signJwt(psatClaims(NOW_S), rsa)), ErrorCode.UNKNOWN_AUTHORITY);
    assert.ok((await attest(signJwt(psatClaims(NOW_S), next))).selectors.length > 0);
  });

  describe('when stat cannot see a rewrite (same timestamps within the file system granularity)', () => {
    let realStat: typeof fs.promises.stat;
    beforeEach(async () => {
      // Freeze what stat reports, so only the unknown-kid path can notice the new key.
      const frozen = await fs.promises.stat(jwksFile, { bigint: true });
      realStat = fs.promises.stat;
      (fs.promises as { stat: unknown }).stat = () => Promise.resolve(frozen);
    });
    afterEach(() => {
      fs.promises.stat = realStat;
    });

    it('an unknown kid forces a re-read, at most once per second', async () => {
      const first = issuerKey('RS256');
      fs.writeFileSync(jwksFile, jwksOf(rsa, ec, first));
      assert.ok((await attest(signJwt(psatClaims(NOW_S), first))).selectors.length > 0);

      const second = issuerKey('RS256');
      fs.writeFileSync(jwksFile, jwksOf(rsa, ec, first, second));
      // Same clock instant as the forced re-read above: the file is not read again.
      await rejectsWithCode(attest(signJwt(psatClaims(NOW_S), second)), ErrorCode.UNKNOWN_AUTHORITY);
      clockMs += 1000;
      assert.ok((await attest(signJwt(psatClaims(NOW_S), second))).selectors.length > 0);
    });
  });

  it('a JWKS file that becomes unreadable fails closed with ERR_IO (UNAVAILABLE)', async () => {
    fs.writeFileSync(jwksFile, '{"keys": [');
    const e = await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S), rsa)),
      ErrorCode.IO,
      /prod-jwks.json cannot be used/,
    );
    assert.equal(grpcStatusOf(e), GrpcStatus.UNAVAILABLE);
    fs.rmSync(jwksFile);
    await rejectsWithCode(attest(signJwt(psatClaims(NOW_S), rsa)), ErrorCode.IO);
  });

  it('allowed_service_accounts: others are ERR_UNAUTHORIZED (PERMISSION_DENIED)', async () => {
    const restricted = await K8sPsatAttestor.fromConfig([
      { ...cluster, allowedServiceAccounts: ['payments:worker'] },
    ]);
    const e = await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S), rsa), NOW, restricted),
      ErrorCode.UNAUTHORIZED,
      /payments:api is not in allowed_service_accounts of cluster "prod"/,
    );
    assert.equal(grpcStatusOf(e), GrpcStatus.PERMISSION_DENIED);
    const ok = await K8sPsatAttestor.fromConfig([{ ...cluster, allowedServiceAccounts: ['payments:api'] }]);
    await attest(signJwt(psatClaims(NOW_S), rsa), NOW, ok);
  });

  it('signed tokens that are not pod-bound projected tokens: ERR_TOKEN_INVALID', async () => {
    const noPod = psatClaims(NOW_S);
    delete (noPod['kubernetes.io'] as Record<string, unknown>).pod;
    await rejectsWithCode(attest(signJwt(noPod, rsa)), ErrorCode.TOKEN_INVALID, /not bound to a pod/);
    await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S, { 'kubernetes.io': undefined }), rsa)),
      ErrorCode.TOKEN_INVALID,
      /no "kubernetes.io" claim/,
    );
    await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S, { sub: 'system:serviceaccount:kube-system:admin' }), rsa)),
      ErrorCode.TOKEN_INVALID,
      /does not match its kubernetes.io claims/,
    );
    await rejectsWithCode(
      attest(signJwt(psatClaims(NOW_S, { exp: undefined }), rsa)),
      ErrorCode.TOKEN_INVALID,
      /no "exp" claim/,
    );
  });

  it('malformed evidence: ERR_MALFORMED_EVIDENCE (INVALID_ARGUMENT)', async () => {
    const good = signJwt(psatClaims(NOW_S), rsa);
    for (const [token, message] of [
      ['not a jwt', /expected 3 dot-separated parts, got 1/],
      [`${good}.x.y`, /encrypted JWT/],
      [good.replace('.', '.!'), /payload is not base64url/],
      [`${base64urlJson([1])}.${good.split('.')[1]}.${good.split('.')[2]}`, /header is not a JSON object/],
      [
        `${base64urlJson({ alg: 'RS256', crit: ['exp'] })}.${good.split('.')[1]}.${good.split('.')[2]}`,
        /crit/,
      ],
    ] as const) {
      const e = await rejectsWithCode(attest(token), ErrorCode.MALFORMED_EVIDENCE, message);
      assert.equal(grpcStatusOf(e), GrpcStatus.INVALID_ARGUMENT);
    }
    await rejectsWithCode(attest('x'.repeat(17 * 1024)), ErrorCode.MALFORMED_EVIDENCE, /more than the 16384/);
  });

  it('a JWKS that cannot be used stops start-up with ERR_INVALID_CONFIG naming the file', async () => {
    const bad = path.join(dir, 'bad.json');
    const cases: [string, RegExp][] = [
      ['not json', /not JSON/],
      ['{"kty":"RSA"}', /expected \{"keys": \[...\]\}/],
      [JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), /private or secret key material/],
      [JSON.stringify({ keys: [{ ...rsa.jwk, d: 'AQAB' }] }), /private or secret key material/],
      [JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-521', x: 'AA', y: 'AA' }] }), /no usable signature key/],
      [jwksOf(rsa, { ...ec, kid: rsa.kid, jwk: { ...ec.jwk, kid: rsa.kid } }), /appears twice/],
    ];
    for (const [text, message] of cases) {
      fs.writeFileSync(bad, text);
      await rejectsWithCode(
        K8sPsatAttestor.fromConfig([{ ...cluster, jwksFile: bad }]),
        ErrorCode.INVALID_CONFIG,
        new RegExp(`bad.json: .*${message.source}`),
      );
    }
    await rejectsWithCode(
      K8sPsatAttestor.fromConfig([{ ...cluster, jwksFile: path.join(dir, 'missing.json') }]),
      ErrorCode.INVALID_CONFIG,
      /missing.json/,
    );
  });
});
