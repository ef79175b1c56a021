/**
 * The messages between the signing pool (signing-pool.ts) and its workers (signing-worker.ts). A CA key crosses
 * the thread boundary only as a KeyObject in an `install` message, once per worker and authority: structured
 * clone hands the worker a handle to the same in-memory key, never its bytes. Neither side logs a message, and a
 * reply never carries a CA key.
 *
 * Everything else is cheap to post: byte fields are exact-size buffers the sender gives up (a transfer list
 * moves them without a copy, and never drags along the rest of a pooled slab, as cloning a view of Buffer's
 * 8 KiB pool would), and a signature request names the workload's key by its SPKI rather than a KeyObject.
 * The pool posts what it gathered in one event-loop turn as one `batch`, and a worker answers a batch with one.
 */
import type { KeyObject } from 'node:crypto';
import type { KeyDescription } from '../x509/keys';

/** Makes the authority's certificate and key available in the worker; sent once per worker and authority. */
export interface InstallRequest {
  type: 'install';
  authorityId: string;
  certDer: Uint8Array;
  key: KeyObject;
}

/** Forgets every authority not named, so a retired CA key does not linger in a worker. */
export interface RetainRequest {
  type: 'retain';
  authorityIds: string[];
}

export interface CsrRequest {
  type: 'csr';
  id: number;
  csr: Uint8Array | string;
}

export interface SignRequest {
  type: 'sign';
  id: number;
  authorityId: string;
  spiffeId: string;
  /** The workload key's SubjectPublicKeyInfo, already vetted by the pool's caller (describeKey, spkiDer). */
  spki: Uint8Array;
  keyKind: KeyDescription['kind'];
  ttlSeconds: number;
  nowMs: number;
  dnsNames?: string[];
  agentContextDer?: Uint8Array;
  agentContextOid: string;
}

/**
 * A CSR checked and, if it passes, a leaf signed for its key: one round trip for what `csr` then `sign` did in
 * two. The worker applies exactly the checks of a `csr` request (csr-subject.ts, the same function as the
 * server's thread without a pool) and the key vetting of a `sign` request, and answers as a `sign` does: the
 * workload's key never comes back.
 */
export interface CsrSignRequest extends Omit<SignRequest, 'type' | 'spki' | 'keyKind'> {
  type: 'csr-sign';
  csr: Uint8Array | string;
  /** The key the CSR must be for, or the request is refused (ERR_INVALID_ARGUMENT with `refusal`). */
  sameKeyAs?: { spki: Uint8Array; refusal: string };
}

export type WorkerRequest = InstallRequest | RetainRequest | CsrRequest | SignRequest | CsrSignRequest;

/** The requests of one event-loop turn for one worker, in the order they were made. */
export interface BatchRequest {
  type: 'batch';
  requests: WorkerRequest[];
}

export type WorkerReply =
  /** `publicKey` is the one KeyObject a reply carries: the caller's ParsedCsr holds it (cloning it is a handle). */
  | { id: number; ok: true; publicKey: KeyObject; spki: Uint8Array }
  | {
      id: number;
      ok: true;
      der: Uint8Array;
      serialHex: string;
      notBeforeMs: number;
      notAfterMs: number;
    }
  /** `code` is a LanyardErrorCode when the failure was a typed error; otherwise the thrown error's class name. */
  | { id: number; ok: false; code: string; message: string; typed: boolean };

/** The answers to one batch, in its order. */
export interface BatchReply {
  type: 'batch';
  replies: WorkerReply[];
}

/**
 * A copy of `bytes` in an exact-size buffer of its own, listed in `transfer`. Always a copy (unlike
 * internal/worker-script.ts ownedBytes): the caller keeps its bytes (an agent context goes on into the audit
 * record), and a view may be a window on a larger buffer (Buffer's pool) that must be neither detached nor
 * cloned whole.
 */
export function copyForTransfer(bytes: Uint8Array, transfer: ArrayBuffer[]): Uint8Array {
  const copy = new Uint8Array(bytes);
  transfer.push(copy.buffer);
  return copy;
}
