/**
 * The messages between the signing pool (signing-pool.ts) and its workers (signing-worker.ts). A CA key crosses
 * the thread boundary only as a KeyObject in an `install` message: structured clone hands the worker a handle to
 * the same in-memory key, never its bytes. Neither side logs a message, and a reply never carries a key.
 */
import type { KeyObject } from 'node:crypto';

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
  publicKey: KeyObject;
  ttlSeconds: number;
  nowMs: number;
  dnsNames?: string[];
  agentContextDer?: Uint8Array;
  agentContextOid: string;
}

export type WorkerRequest = InstallRequest | RetainRequest | CsrRequest | SignRequest;

export type WorkerReply =
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
