/**
 * Serialises async critical sections. One SQLite connection can hold only one transaction, and an async
 * transaction callback yields to the event loop; without this, another call could run its statements inside
 * that open transaction.
 */
export class AsyncMutex {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T> | T): Promise<T> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
