/**
 * The audit chain heads of one group-commit batch. The calls of a batch run one after another inside one write
 * transaction that holds the store's write lock (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock), so no
 * other writer, in this process or another server, can move a chain until the batch ends: the head read by the
 * batch's first append stays the head, moved only by the batch's own appends. Each call runs in a savepoint, and a
 * call that fails is rolled back with its records: the heads its appends moved are dropped with it, so the next
 * call chains on the last record that is still there.
 *
 * Nothing is carried from one batch to the next: between two transactions another server (PostgreSQL) or
 * another process on the same SQLite file may have appended, so every batch reads each head it needs once, in
 * its transaction.
 */
import type { ChainHead } from '../audit/chain';

export class BatchAuditHeads {
  /** The heads as the calls that succeeded left them. */
  private readonly kept = new Map<string, ChainHead>();
  /** The heads the running call moved; kept when it succeeds, dropped when it is rolled back. */
  private readonly running = new Map<string, ChainHead>();

  /** The chain's head inside this batch, or undefined when no call of the batch has read it yet. */
  head(chain: string): ChainHead | undefined {
    return this.running.get(chain) ?? this.kept.get(chain);
  }

  /** The running call read or moved the chain's head to `head`. */
  moved(head: ChainHead): void {
    this.running.set(head.chain, head);
  }

  /** The running call's savepoint was released: what it moved stays. */
  callKept(): void {
    for (const [chain, head] of this.running) this.kept.set(chain, head);
    this.running.clear();
  }

  /** The running call was rolled back to its savepoint: its records are gone, and so are the heads they made. */
  callRolledBack(): void {
    this.running.clear();
  }
}
