/** Bulk state for the scale benchmarks, written straight into a server's SQLite file. */
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';

/**
 * Revoked serials written straight into the server's SQLite file (a second connection, one transaction per
 * batch): through the store API a million rows take many minutes on this machine, and only the reads are being
 * measured. The rows are what addRevocation writes; the server reads them on its next change.
 */
export function seedRevocations(file: string, count: number, batchSize = 20_000): void {
  const db = new Database(file);
  db.pragma('busy_timeout = 60000');
  const insert = db.prepare(
    `INSERT OR IGNORE INTO revocations (kind, target_id, reason, revoked_at, expires_at) VALUES ('certificate', ?, 'bench', ?, ?)`,
  );
  const now = Date.now();
  const expiresAt = now + 6 * 3600_000;
  const batch = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) {
      // A serial as the CA makes them: random, 127 bits, lower-case hex.
      insert.run((BigInt(`0x${randomBytes(16).toString('hex')}`) >> 1n).toString(16), now, expiresAt);
    }
  });
  for (let done = 0; done < count; done += batchSize) batch(Math.min(batchSize, count - done));
  db.close();
}
