/**
 * The messages between the CRL publisher's worker builder (crl-builder.ts) and its thread (crl-build-worker.ts).
 * A CA key crosses the thread boundary only as a KeyObject in a `build` message (structured clone hands the
 * worker a handle to the same in-memory key, never its bytes); the worker keeps it for that build only. Neither
 * side logs a message, and a reply never carries a key.
 */
import type { KeyObject } from 'node:crypto';

/** Given to the worker when it starts. */
export interface CrlWorkerData {
  /** The SQLite store's file: the worker reads the revocations on a read-only connection of its own. */
  sqliteFile?: string;
  /** Revocation sequences per bounded read of the store (default 32,768). */
  readChunk?: number;
  /**
   * The nice value the worker thread gives itself (Linux: a thread's own; elsewhere nothing), so that on a busy
   * machine the server's thread is scheduled before the build. 0 leaves it as the process's.
   */
  niceness?: number;
  /**
   * The time slice (ms) the worker thread asks for (Linux >= 6.12, the project's addon built; thread-priority.ts):
   * longer than any other thread's, so that a woken server thread preempts the build. 0: the kernel's.
   */
  sliceMs?: number;
  /** The worker thread under SCHED_IDLE instead (measured unfit as a default: thread-priority.ts). */
  idle?: boolean;
}

/** A CA to sign for, in one build. */
export interface CrlWorkerSigner {
  authorityId: string;
  certDer: Uint8Array;
  key: KeyObject;
}

/** A delta the server's thread read from a store the worker cannot open (PostgreSQL), in columns. */
export interface CrlWorkerDelta {
  serials: string[];
  revokedAtMs: Float64Array;
  expiresAtMs: Float64Array;
  throughSequence: number;
}

export interface CrlBuildMessage {
  type: 'build';
  id: number;
  /** Read everything again (the list is emptied first); else only the revocations after `after`. */
  full: boolean;
  after: number;
  crlNumber: bigint;
  thisUpdateMs: number;
  nextUpdateMs: number;
  signers: CrlWorkerSigner[];
  /** Absent when the worker reads the store itself. */
  delta?: CrlWorkerDelta;
  /**
   * Buffers nothing reads any more (crl-buffers.ts): the worker writes the build's DERs into one that is large
   * enough, else into a new one.
   */
  buffers: SharedArrayBuffer[];
}

export interface CrlBuildResult {
  crls: { authorityId: string; der: Uint8Array }[];
  revokedCount: number;
  /** Serials the delta held (a serial may count twice). */
  added: number;
  /**
   * The worker's bounded reads of the store for this build; 0 when it was handed a delta read on the server's
   * thread (PostgreSQL); 1 for the inline builder (one read).
   */
  reads: number;
  throughSequence: number;
  /** Whether the list was read whole: asked for, or the builder had no list (a new worker). */
  full: boolean;
}

export type CrlWorkerRequest = CrlBuildMessage;

export type CrlWorkerReply =
  /** The build began (the worker took the message). */
  | { type: 'started'; id: number }
  /**
   * The signed CRLs, with the time spent in the worker (milliseconds): each DER at `offset`, `length` bytes, in
   * the offered buffer `bufferIndex` or, when -1, in the new `buffer`. Only a new buffer crosses back: each
   * SharedArrayBuffer received is a new object on the server's thread that V8 counts as that much new external
   * memory, which is what brought a mark-compact per publish (crl-buffers.ts).
   */
  | (Omit<CrlBuildResult, 'crls'> & {
      type: 'built';
      id: number;
      durationMs: number;
      crls: { authorityId: string; offset: number; length: number }[];
      bufferIndex: number;
      buffer?: SharedArrayBuffer;
    })
  /** `typed`: `code` is a LanyardErrorCode; else the thrown error's class name. */
  | { type: 'failed'; id: number; code: string; message: string; typed: boolean };
