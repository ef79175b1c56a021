import type { KeyObject } from 'node:crypto';
import { InternalError } from '../errors';
import type { CaAuthorityRecord, CaAuthorityStatus } from '../store';
import { ParsedCertificate } from '../x509/certificate';

/**
 * One signing CA as the CA manager holds it in memory, and the thin mapping to the store's record.
 *
 * States follow SPIRE: `prepared` (made ahead of time; its root is already in the bundle so verifiers learn
 * it before any SVID depends on it), `active` (signs), `old` (no longer signs; kept, with its root in the
 * bundle, until its notAfter, after which no SVID it signed can still be valid). The store calls `old`
 * `retired`.
 */
export type CaAuthorityState = 'prepared' | 'active' | 'old';

export interface CaAuthority {
  readonly id: string;
  readonly state: CaAuthorityState;
  /** The CA certificate that signs SVIDs: a self-signed root, or an intermediate signed upstream. */
  readonly cert: ParsedCertificate;
  /** Certificates above `cert` up to, not including, the upstream root; empty when `cert` is a root. */
  readonly upstreamChain: readonly ParsedCertificate[];
  /** Key-manager id of the private key. */
  readonly keyId: string;
  /**
   * The private key handle. Absent only for an `old` CA whose key could not be loaded: it no longer signs,
   * and its certificate alone keeps anchoring verification until it expires.
   */
  readonly key?: KeyObject;
  readonly createdAt: Date;
  readonly activatedAt?: Date;
}

/** What callers outside src/ca may see of an authority: no key handle. */
export interface CaAuthorityInfo {
  readonly id: string;
  readonly state: CaAuthorityState;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly createdAt: Date;
  readonly activatedAt?: Date;
  /** True for a self-signed root; false for an intermediate under an upstream CA. */
  readonly selfSigned: boolean;
  /** SHA-256 of the CA certificate's DER, hex. */
  readonly sha256Hex: string;
  readonly certDer: Uint8Array;
}

/**
 * Whether each CA certificate verifies under its own key: a signature check that every mTLS call asked again
 * (through `authorities()`), although the answer is a function of the certificate's bytes alone.
 */
const selfSignature = new WeakMap<ParsedCertificate, boolean>();

export function isSelfSigned(a: CaAuthority): boolean {
  if (a.upstreamChain.length !== 0 || !a.cert.selfIssued) return false;
  let signed = selfSignature.get(a.cert);
  if (signed === undefined) {
    signed = a.cert.isSignedBy(a.cert);
    selfSignature.set(a.cert, signed);
  }
  return signed;
}

/** What a workload presents after its leaf: the CA certificate, then the upstream intermediates. */
export function chainAbove(a: CaAuthority): Uint8Array[] {
  return [a.cert.der, ...a.upstreamChain.map((c) => c.der)];
}

export function infoOf(a: CaAuthority): CaAuthorityInfo {
  return Object.freeze({
    id: a.id,
    state: a.state,
    notBefore: a.cert.notBefore,
    notAfter: a.cert.notAfter,
    createdAt: a.createdAt,
    ...(a.activatedAt !== undefined ? { activatedAt: a.activatedAt } : {}),
    selfSigned: isSelfSigned(a),
    sha256Hex: a.cert.sha256Hex,
    certDer: new Uint8Array(a.cert.der),
  });
}

export function withState(a: CaAuthority, state: CaAuthorityState, activatedAt?: Date): CaAuthority {
  return Object.freeze({ ...a, state, ...(activatedAt !== undefined ? { activatedAt } : {}) });
}

export function toRecord(a: CaAuthority): CaAuthorityRecord {
  const record: CaAuthorityRecord = {
    id: a.id,
    status: statusOf(a.state),
    certDer: Buffer.from(a.cert.der),
    upstreamChainDer: a.upstreamChain.map((c) => Buffer.from(c.der)),
    keyRef: a.keyId,
    notBefore: a.cert.notBefore,
    notAfter: a.cert.notAfter,
    createdAt: a.createdAt,
  };
  if (a.activatedAt !== undefined) record.activatedAt = a.activatedAt;
  return record;
}

/**
 * The authority of a stored record, without its key (the caller loads it from the key manager).
 * @throws StoreError(ERR_INTERNAL) when the stored certificates do not parse: the database is damaged.
 */
export function fromRecord(r: CaAuthorityRecord): Omit<CaAuthority, 'key'> {
  let cert: ParsedCertificate;
  let upstreamChain: ParsedCertificate[];
  try {
    cert = ParsedCertificate.fromDer(r.certDer);
    upstreamChain = r.upstreamChainDer.map((d) => ParsedCertificate.fromDer(d));
  } catch (e) {
    throw new InternalError(`stored CA authority ${r.id} has an unreadable certificate`, {
      cause: e,
    });
  }
  return {
    id: r.id,
    state: r.status === 'retired' ? 'old' : r.status,
    cert,
    upstreamChain,
    keyId: r.keyRef,
    createdAt: r.createdAt,
    ...(r.activatedAt !== undefined ? { activatedAt: r.activatedAt } : {}),
  };
}

function statusOf(state: CaAuthorityState): CaAuthorityStatus {
  return state === 'old' ? 'retired' : state;
}
