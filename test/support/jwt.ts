import { createPublicKey, generateKeyPairSync, KeyObject, sign } from 'node:crypto';

/** A Kubernetes-style service-account issuer key made locally, with the JWK its JWKS publishes. */
export interface IssuerKey {
  kid: string;
  alg: 'RS256' | 'ES256' | 'ES384';
  privateKey: KeyObject;
  jwk: Record<string, unknown>;
}

let counter = 0;

export function issuerKey(alg: IssuerKey['alg'] = 'RS256', kid = `kid-${++counter}`): IssuerKey {
  const { privateKey } =
    alg === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: alg === 'ES256' ? 'P-256' : 'P-384' });
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' }) as Record<string, unknown>;
  return { kid, alg, privateKey, jwk: { ...jwk, kid, use: 'sig', alg } };
}

export function jwksOf(...keys: IssuerKey[]): string {
  return JSON.stringify({ keys: keys.map((k) => k.jwk) });
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** A compact JWS signed exactly as the API server signs service-account tokens. */
export function signJwt(
  payload: Record<string, unknown>,
  key: IssuerKey,
  header: Record<string, unknown> = { alg: key.alg, kid: key.kid },
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const alg = String(header.alg);
  const sig =
    alg === 'RS256'
      ? sign('sha256', Buffer.from(input), key.privateKey)
      : sign(alg === 'ES384' ? 'sha384' : 'sha256', Buffer.from(input), {
          key: key.privateKey,
          dsaEncoding: 'ieee-p1363',
        });
  return `${input}.${sig.toString('base64url')}`;
}

/** An unsigned token (`alg: none`), as in the classic forgery. */
export function unsignedJwt(payload: Record<string, unknown>): string {
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
}

export { b64 as base64urlJson };

/** The claims of a projected token for pod `web-0` of service account `payments/api` on node `node-a`. */
export function psatClaims(
  nowSeconds: number,
  overrides: Record<string, unknown> = {},
  issuer = 'https://kubernetes.default.svc.cluster.local',
): Record<string, unknown> {
  return {
    aud: ['lanyard'],
    exp: nowSeconds + 3600,
    iat: nowSeconds - 10,
    nbf: nowSeconds - 10,
    iss: issuer,
    sub: 'system:serviceaccount:payments:api',
    'kubernetes.io': {
      namespace: 'payments',
      node: { name: 'node-a', uid: '6f1c0c1e-0000-4000-8000-00000000000a' },
      pod: { name: 'web-0', uid: '0d7f4a56-0000-4000-8000-000000000001' },
      serviceaccount: { name: 'api', uid: '9a8b7c6d-0000-4000-8000-000000000002' },
      warnafter: nowSeconds + 3000,
    },
    ...overrides,
  };
}
