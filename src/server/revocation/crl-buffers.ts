/**
 * The shared buffers the CRL build worker writes its DER into, reused between builds. A new 33 MiB buffer
 * transferred from the worker on each 1M-revocation build was external memory the server's thread had not
 * seen before, and V8 answered it with a mark-compact on that thread at each publish (docs/design/
 * performance-log.md, "A 1M CRL without a new 33 MiB buffer per build"). The pool keeps this thread's own
 * SharedArrayBuffer objects; the worker is lent them for a build and answers with offsets, so no new buffer object
 * (which V8 would count as that much new external memory, shared or not) reaches this thread but a new one, when
 * a CRL outgrew the pool.
 *
 * A buffer is written again only when nothing can still read the CRL in it: its CRL is no longer the published one,
 * no HTTP body is reading it (crl-http.ts counts its readers until the response closes, when the socket holds no
 * more of its bytes), and it was never handed to a caller that keeps it without counting (`pin`). Anything else
 * makes the worker allocate a new buffer, as every build did before.
 */

/** The free buffers, at most `keep` (the largest), offered to the next build. */
export class CrlBufferPool {
  private free: SharedArrayBuffer[] = [];

  constructor(private readonly keep = 2) {}

  /** Every free buffer, taken out of the pool: the build may write into any of them. */
  take(): SharedArrayBuffer[] {
    return this.free.splice(0);
  }

  /** `buffer` is no longer read by anyone: a later build may write into it. */
  give(buffer: SharedArrayBuffer): void {
    this.free.push(buffer);
    this.free.sort((a, b) => b.byteLength - a.byteLength);
    this.free.length = Math.min(this.free.length, this.keep);
  }

  /** Free buffers held now: for tests. */
  get size(): number {
    return this.free.length;
  }
}

/** Who may still read the CRLs one build wrote into `buffer`. */
export class CrlBufferHold {
  private readers = 0;
  private published = true;
  private pinned = false;
  private returned = false;

  constructor(
    readonly buffer: SharedArrayBuffer,
    private readonly pool: CrlBufferPool,
  ) {}

  /**
   * A reader that releases when done (the returned function, idempotent); undefined when the buffer already went
   * back to the pool, so its bytes may be another build's.
   */
  read(): (() => void) | undefined {
    if (this.returned) return undefined;
    this.readers += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.readers -= 1;
      this.maybeReturn();
    };
  }

  /** Handed to a caller that does not count itself: never written again. */
  pin(): void {
    this.pinned = true;
  }

  /** A newer CRL was published: only the counted readers still hold this one. */
  unpublish(): void {
    this.published = false;
    this.maybeReturn();
  }

  private maybeReturn(): void {
    if (this.returned || this.published || this.pinned || this.readers > 0) return;
    this.returned = true;
    this.pool.give(this.buffer);
  }
}
