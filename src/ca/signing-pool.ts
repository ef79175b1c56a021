/**
 * A few worker threads that check CSRs and sign X509-SVIDs, so that the server's own thread (TLS, HTTP/2, the
 * store, the audit chain) is not also the one doing every signature: on a machine with more than one core the
 * two run side by side.
 *
 * Key handling is as it is without the pool: a CA key exists only in this process's memory. It reaches a worker
 * as a KeyObject (structured clone passes a handle to the same key, not its bytes), in a message that nothing
 * logs, once per worker and authority; a worker keeps only the key of the authority it last signed for, and the
 * pool's errors carry codes and messages, never a request or a key.
 *
 * The server's thread pays as little as it can per call: the requests made in one event-loop turn go to a
 * worker as one message (one wake-up of the thread, one 'message' event back), their bytes are exact-size copies
 * moved by transfer (a Buffer from the gRPC decoder is a view on an 8 KiB pool, which structured clone would copy
 * whole), a signature request names the workload's key by its SPKI (no KeyObject per job), and the leaf comes
 * back as bytes and the fields it was signed with, not re-parsed.
 *
 * A worker that dies (a crash, an out-of-memory kill of the thread) fails the calls it held with ERR_CA_NOT_READY
 * (UNAVAILABLE: retry) and is replaced; since an answer is only sent after signing, a failed call issued nothing
 * anyone received. `close()` lets the calls in flight finish, then stops the threads.
 */
import type { KeyObject } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import {
  CaNotReadyError,
  errorFromCode,
  InternalError,
  isLanyardErrorCode,
  type LanyardError,
} from '../errors';
import { startWorkerScript } from '../internal/worker-script';
import type { ParsedCsr } from '../x509/csr';
import { describeKey, rememberSpkiExport, spkiDer } from '../x509/keys';
import type { SignedLeaf } from '../x509/profiles';
import type { CsrSubject } from './csr-subject';
import {
  copyForTransfer,
  type BatchReply,
  type BatchRequest,
  type CsrSignRequest,
  type SignRequest,
  type WorkerReply,
  type WorkerRequest,
} from './signing-protocol';

/** The authority a signature is made with: what a worker needs to hold to sign for it. */
export interface PoolAuthority {
  id: string;
  certDer: Uint8Array;
  key: KeyObject;
}

/** What every leaf request names besides its key. */
type LeafFields = Omit<SignRequest, 'type' | 'id' | 'authorityId' | 'spki' | 'keyKind'>;

export type PoolSignRequest = LeafFields & {
  /** The workload's key; the worker gets its SPKI (what the certificate carries), not the KeyObject. */
  publicKey: KeyObject;
};

/** The workload's key as its CSR, checked in the worker (csr-subject.ts), with the pin if any. */
export type PoolCsrSignRequest = LeafFields & CsrSubject;

interface Pending {
  resolve(reply: WorkerReply & { ok: true }): void;
  reject(e: Error): void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  /** The authority the worker holds a key for, if any. */
  installed: string | undefined;
  /** Set once the worker's exit was handled, so a late event does not fail calls twice. */
  gone: boolean;
  /** Requests of this event-loop turn not yet posted, in order, and the buffers they give away. */
  queue: WorkerRequest[];
  transfer: ArrayBuffer[];
}

export class SigningPool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closing = false;
  private stopped = false;
  private drained: (() => void) | undefined;
  private flushScheduled = false;
  /** Workers replaced after dying: for health output and tests. */
  restarts = 0;

  /** @param size number of worker threads, at least 1 */
  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1 || size > 64) {
      throw new RangeError(`a signing pool has 1 to 64 workers, not ${size}`);
    }
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  /** parseCsr in a worker: the same checks, the same typed errors (ERR_MALFORMED_CSR, ...). */
  async checkCsr(csr: Uint8Array | string): Promise<ParsedCsr> {
    const reply = await this.call((id, transfer) => ({
      type: 'csr',
      id,
      csr: typeof csr === 'string' ? csr : copyForTransfer(csr, transfer),
    }));
    if (!('publicKey' in reply))
      throw new InternalError('the signing worker answered a CSR check with no key');
    // The key the worker imported, cloned as a handle, and its SPKI as the worker exported it: remembered, so
    // the signature request (and anything else) reads the SPKI back without an OpenSSL export on this thread.
    rememberSpkiExport(reply.publicKey, reply.spki);
    return { publicKey: reply.publicKey, spki: reply.spki };
  }

  /** signX509SvidLeaf in a worker with the authority's key: the leaf's DER and the fields it was signed with. */
  async sign(authority: PoolAuthority, request: PoolSignRequest): Promise<SignedLeaf> {
    // Vetted here as signX509SvidLeaf would (ERR_UNSUPPORTED_KEY for a key outside the accepted set).
    const keyKind = describeKey(request.publicKey).kind;
    return this.signed(authority, request, (id, transfer): SignRequest => {
      // spkiDer hands out a fresh copy: it can be given away.
      const spki = spkiDer(request.publicKey);
      transfer.push(spki.buffer as ArrayBuffer);
      return { type: 'sign', id, authorityId: authority.id, spki, keyKind, ...leafFields(request, transfer) };
    });
  }

  /**
   * The CSR checked and the leaf signed for its key in one request to one worker (half the messages and
   * wake-ups of checkCsr then sign): the checks of checkCsr, the pin, the key vetting of sign, the same typed
   * errors; the workload's key stays in the worker.
   */
  async signForCsr(authority: PoolAuthority, request: PoolCsrSignRequest): Promise<SignedLeaf> {
    return this.signed(authority, request, (id, transfer): CsrSignRequest => {
      const csr = request.csr;
      const m: CsrSignRequest = {
        type: 'csr-sign',
        id,
        authorityId: authority.id,
        csr: typeof csr === 'string' ? csr : copyForTransfer(csr, transfer),
        ...leafFields(request, transfer),
      };
      const pin = request.sameKeyAs;
      if (pin !== undefined) {
        m.sameKeyAs = { spki: copyForTransfer(pin.spki, transfer), refusal: pin.refusal };
      }
      return m;
    });
  }

  private async signed(
    authority: PoolAuthority,
    request: LeafFields,
    make: (id: number, transfer: ArrayBuffer[]) => WorkerRequest,
  ): Promise<SignedLeaf> {
    const reply = await this.call(make, authority);
    if (!('der' in reply))
      throw new InternalError('the signing worker answered a signature with no certificate');
    return {
      der: reply.der,
      spiffeId: request.spiffeId,
      serialHex: reply.serialHex,
      notBefore: new Date(reply.notBeforeMs),
      notAfter: new Date(reply.notAfterMs),
      ...(request.agentContextDer !== undefined && { agentContextDer: request.agentContextDer }),
    };
  }

  /** Worker threads running: `size` until `close()` finished, then 0. */
  get threads(): number {
    return this.stopped ? 0 : this.slots.length;
  }

  /** Calls in flight, over all workers. */
  get inFlight(): number {
    return this.slots.reduce((n, s) => n + s.pending.size, 0);
  }

  /**
   * Stops one worker at once, as a crash would: the calls it held fail with ERR_CA_NOT_READY and a new worker
   * takes its place. For operators' drills and for tests of exactly that path.
   */
  async stopWorker(index: number): Promise<void> {
    const slot = this.slots[index];
    if (slot === undefined) throw new RangeError(`no worker ${index}`);
    await slot.worker.terminate();
  }

  /** Refuses new calls, waits for the calls in flight, then stops every worker. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.stopped = true;
  }

  private call(
    make: (id: number, transfer: ArrayBuffer[]) => WorkerRequest,
    authority?: PoolAuthority,
  ): Promise<WorkerReply & { ok: true }> {
    if (this.closing) return Promise.reject(new CaNotReadyError('the signing pool is closed'));
    const slot = this.leastBusy();
    const id = this.nextId++;
    // Made before the promise, so a throw in it rejects this call and leaves nothing queued.
    const transfer: ArrayBuffer[] = [];
    const request = make(id, transfer);
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      if (slot.pending.size === 1) slot.worker.ref();
      if (authority !== undefined && slot.installed !== authority.id) {
        // One CA key per worker: the one it signs with now. A worker handles its requests in the order they
        // were queued, so a request for the previous authority queued before is signed before the key is dropped.
        this.enqueue(slot, { type: 'retain', authorityIds: [] }, []);
        this.enqueue(
          slot,
          { type: 'install', authorityId: authority.id, certDer: authority.certDer, key: authority.key },
          [],
        );
        slot.installed = authority.id;
      }
      this.enqueue(slot, request, transfer);
    });
  }

  /** Queues a request for the end of this event-loop turn, when each worker gets its requests in one message. */
  private enqueue(slot: Slot, m: WorkerRequest, transfer: ArrayBuffer[]): void {
    slot.queue.push(m);
    for (const b of transfer) slot.transfer.push(b);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const slot of this.slots) {
      if (slot.queue.length === 0) continue;
      const batch: BatchRequest = { type: 'batch', requests: slot.queue };
      const transfer = slot.transfer;
      slot.queue = [];
      slot.transfer = [];
      slot.worker.postMessage(batch, transfer);
    }
  }

  private leastBusy(): Slot {
    let best = this.slots[0]!;
    for (const s of this.slots) if (s.pending.size < best.pending.size) best = s;
    return best;
  }

  private spawn(): Slot {
    const worker = startWorkerScript(__filename, 'signing-worker');
    const slot: Slot = {
      worker,
      pending: new Map(),
      installed: undefined,
      gone: false,
      queue: [],
      transfer: [],
    };
    worker.unref();
    worker.on('message', (batch: BatchReply) => {
      for (const reply of batch.replies) this.settle(slot, reply);
    });
    // An uncaught error in the worker is followed by its exit, which fails its calls; nothing to log here
    // that could carry a request.
    worker.on('error', () => {});
    worker.on('exit', (code) => this.exited(slot, code));
    return slot;
  }

  private settle(slot: Slot, reply: WorkerReply): void {
    const p = slot.pending.get(reply.id);
    if (p === undefined) return;
    this.forget(slot, reply.id);
    if (reply.ok) p.resolve(reply);
    else p.reject(rebuild(reply));
  }

  private exited(slot: Slot, code: number): void {
    if (slot.gone) return;
    slot.gone = true;
    // Requests not yet posted belong to calls failed just below; nothing of them reaches a worker.
    slot.queue = [];
    slot.transfer = [];
    const failed = [...slot.pending.entries()];
    for (const [id, p] of failed) {
      this.forget(slot, id);
      p.reject(
        new CaNotReadyError(
          `the signing worker stopped (exit code ${code}) while holding this request; no SVID was issued for it, retry`,
        ),
      );
    }
    if (this.closing) return;
    const index = this.slots.indexOf(slot);
    if (index >= 0) {
      this.restarts++;
      this.slots[index] = this.spawn();
    }
  }

  private forget(slot: Slot, id: number): void {
    slot.pending.delete(id);
    if (slot.pending.size === 0) slot.worker.unref();
    if (this.closing && this.inFlight === 0) this.drained?.();
  }
}

/** The fields of a leaf request, the agent context as an exact-size copy given away. */
function leafFields(request: LeafFields, transfer: ArrayBuffer[]): LeafFields {
  const m: LeafFields = {
    spiffeId: request.spiffeId,
    ttlSeconds: request.ttlSeconds,
    nowMs: request.nowMs,
    agentContextOid: request.agentContextOid,
  };
  if (request.dnsNames !== undefined) m.dnsNames = request.dnsNames;
  if (request.agentContextDer !== undefined) {
    m.agentContextDer = copyForTransfer(request.agentContextDer, transfer);
  }
  return m;
}

/** A typed error keeps its class; anything else was a bug in the worker. */
function rebuild(reply: WorkerReply & { ok: false }): LanyardError {
  if (reply.typed && isLanyardErrorCode(reply.code)) return errorFromCode(reply.code, reply.message);
  return new InternalError(`the signing worker failed: ${reply.code}: ${reply.message}`);
}
