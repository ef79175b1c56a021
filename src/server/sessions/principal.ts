/**
 * Who a task session acts for. Three ways, strongest first:
 *  - a token (OIDC ID token or JWT access token) from a configured issuer, checked against that issuer's
 *    JWKS file with the same node:crypto JWT code the k8s_psat attestor uses -> provenance `verified`;
 *  - an id asserted by the calling agent, only when its entry has can_assert_principal ->
 *    `asserted-by:<the agent's SPIFFE ID>` (the verifier sees exactly who vouched);
 *  - nothing -> the agent itself, provenance `workload`.
 * The token is never logged or stored: only its issuer and subject go into the session.
 */
import { JwksFile } from '../../attest/jwks-file';
import { decodeJwt, jwtSignedBy, MAX_JWT_BYTES } from '../../attest/jwt';
import {
  InvalidArgumentError,
  MalformedEvidenceError,
  PrincipalAssertionNotAllowedError,
  PrincipalIssuerUnknownError,
  SignatureInvalidError,
  TokenAudienceMismatchError,
  TokenExpiredError,
  TokenNotYetValidError,
} from '../../errors';
import type { PrincipalEvidence } from '../../gen/lanyard/v1/session';
import type { Entry } from '../../store/types';
import type { Principal } from '../../x509/agent-context/types';
import type { PrincipalIssuerConfig } from '../config';

/** Clock skew tolerated on exp, nbf and iat (as for k8s_psat). */
export const PRINCIPAL_TOKEN_LEEWAY_SECONDS = 60;

interface Issuer {
  config: PrincipalIssuerConfig;
  jwks: JwksFile;
}

export class PrincipalVerifier {
  private constructor(private readonly issuers: ReadonlyMap<string, Issuer>) {}

  /** Reads every issuer's JWKS now. @throws ConfigError naming a bad file. */
  static async fromConfig(configs: readonly PrincipalIssuerConfig[]): Promise<PrincipalVerifier> {
    const issuers = new Map<string, Issuer>();
    for (const config of configs) {
      issuers.set(config.issuer, { config: { ...config }, jwks: await JwksFile.open(config.jwksFile) });
    }
    return new PrincipalVerifier(issuers);
  }

  /** The principal of a new session for the agent `entry` (whose SVID names `callerId`). */
  async principalFor(
    evidence: PrincipalEvidence | undefined,
    entry: Entry,
    callerId: string,
    serverId: string,
    now: Date,
  ): Promise<Principal> {
    const e = evidence?.evidence;
    if (e === undefined) return { id: callerId, issuer: serverId, provenance: 'workload' };
    if (e.$case === 'assertedId') {
      if (!entry.canAssertPrincipal) {
        throw new PrincipalAssertionNotAllowedError(
          `${callerId} may not assert a principal (its entry lacks can_assert_principal): present a token`,
        );
      }
      if (e.value === '' || Buffer.byteLength(e.value) > 2048) {
        throw new InvalidArgumentError('asserted principal id must be 1..2048 bytes');
      }
      return { id: e.value, issuer: callerId, provenance: `asserted-by:${callerId}` };
    }
    return this.verifyToken(e.value, now);
  }

  private async verifyToken(token: string, now: Date): Promise<Principal> {
    if (Buffer.byteLength(token) > MAX_JWT_BYTES) {
      throw new MalformedEvidenceError(`principal token larger than ${MAX_JWT_BYTES} bytes`);
    }
    const jwt = decodeJwt(token.trim());
    // `iss` only picks which keys to try; the signature by that issuer's key is what makes it true.
    const iss = jwt.payload.iss;
    const issuer = typeof iss === 'string' ? this.issuers.get(iss) : undefined;
    if (issuer === undefined) {
      throw new PrincipalIssuerUnknownError(
        `principal token issuer ${JSON.stringify(typeof iss === 'string' ? iss.slice(0, 128) : null)} is not configured (principal_issuers)`,
      );
    }
    const keys = await issuer.jwks.keysFor(jwt.header.kid);
    if (!keys.some((k) => jwtSignedBy(jwt, k))) {
      throw new SignatureInvalidError(
        `principal token is not signed by a key of issuer ${issuer.config.issuer}`,
      );
    }
    const aud = jwt.payload.aud;
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!audiences.includes(issuer.config.audience)) {
      throw new TokenAudienceMismatchError(`principal token is not for audience "${issuer.config.audience}"`);
    }
    checkTimes(jwt.payload, now);
    const sub = jwt.payload.sub;
    if (typeof sub !== 'string' || sub === '' || Buffer.byteLength(sub) > 2048) {
      throw new MalformedEvidenceError('principal token has no usable "sub" claim');
    }
    return { id: sub, issuer: issuer.config.issuer, provenance: 'verified' };
  }
}

function checkTimes(payload: Record<string, unknown>, now: Date): void {
  const t = now.getTime() / 1000;
  const leeway = PRINCIPAL_TOKEN_LEEWAY_SECONDS;
  const exp = numericDate(payload, 'exp');
  if (exp === undefined) throw new MalformedEvidenceError('principal token has no "exp"');
  if (t > exp + leeway) throw new TokenExpiredError('principal token has expired');
  const nbf = numericDate(payload, 'nbf');
  const iat = numericDate(payload, 'iat');
  if ((nbf !== undefined && t < nbf - leeway) || (iat !== undefined && t < iat - leeway)) {
    throw new TokenNotYetValidError('principal token is not valid yet');
  }
}

function numericDate(payload: Record<string, unknown>, claim: string): number | undefined {
  const v = payload[claim];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new MalformedEvidenceError(`principal token claim "${claim}" is not a number`);
  }
  return v;
}
