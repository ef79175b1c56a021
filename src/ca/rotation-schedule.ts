import type { ParsedCertificate } from '../x509/certificate';

/**
 * When rotation steps fall due, from the active CA's actual validity (after any cap by an upstream CA), as
 * SPIRE schedules them:
 *  - prepare at 1/2 of the lifetime: the next root enters the bundle early, so every verifier has fetched
 *    it long before the first SVID signed by it appears;
 *  - activate when 1/6 remains: SVIDs (never longer-lived than their CA) signed just before activation
 *    stay valid, and the new CA has most of its life ahead.
 */
export interface RotationTimes {
  prepareAt: Date;
  activateAt: Date;
  expiresAt: Date;
}

export function rotationTimes(cert: Pick<ParsedCertificate, 'notBefore' | 'notAfter'>): RotationTimes {
  const start = cert.notBefore.getTime();
  const end = cert.notAfter.getTime();
  const lifetime = end - start;
  return {
    prepareAt: new Date(start + lifetime / 2),
    activateAt: new Date(end - lifetime / 6),
    expiresAt: new Date(end),
  };
}

/** A certificate is unusable at and after notAfter; treating the boundary as expired errs on the safe side. */
export function isExpired(cert: Pick<ParsedCertificate, 'notAfter'>, now: Date): boolean {
  return now.getTime() >= cert.notAfter.getTime();
}

/** Renewal of a short-lived credential at half of the time between issuance and expiry. */
export function halfLife(issuedAt: Date, notAfter: Date): Date {
  return new Date(issuedAt.getTime() + (notAfter.getTime() - issuedAt.getTime()) / 2);
}
