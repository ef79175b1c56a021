/**
 * The server's audit key, rotating. In its directory (0700):
 *   audit-key.pem        the current private key (PKCS#8, 0600); a retired key's private half is destroyed
 *   audit-keys.json      the history (key-history.ts): every key's introduction, so every key's window (0600)
 *   audit-key.next.pem   only during a rotation
 *
 * A rotation writes the next key beside the current one, then the history naming it (the commit point), then
 * renames it over the current key. Opening after a crash finishes a committed rotation and discards one that
 * never committed, so the history and the key always agree. A data dir from before rotation existed holds a
 * key and no history: that key is adopted as having signed since the beginning.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ioStep, makeDir, removeFile, syncDir, writeFileAtomic } from '../internal/secure-file';
import { AuditChainBrokenError, KeyUnreadableError } from '../errors';
import { AuditSigningKey } from './audit-key';
import {
  introduceKey,
  parseKeyIntroduction,
  ringFromIntroductions,
  type AuditKeyIntroduction,
} from './key-history';
import type { AuditKeyRing } from './key-ring';

export const AUDIT_KEY_FILE_NAME = 'audit-key.pem';
export const AUDIT_KEY_HISTORY_FILE_NAME = 'audit-keys.json';
const NEXT_KEY_FILE_NAME = 'audit-key.next.pem';

/** When a key found without a history has been signing: from the start, as the only key there was. */
const ADOPTED_VALID_FROM = new Date(0);

export class RotatingAuditKey {
  private current: AuditSigningKey;
  private history: AuditKeyIntroduction[];
  private ringCache: AuditKeyRing;

  private constructor(
    readonly dir: string,
    current: AuditSigningKey,
    history: AuditKeyIntroduction[],
  ) {
    this.current = current;
    this.history = history;
    this.ringCache = ringFromIntroductions(history);
  }

  /**
   * Loads the key and its history from `dir`, creating the first key (valid from `now`) when there is none.
   * @throws KeyManagerError when the key file is insecure or unreadable, or does not match the history;
   *   AuditError(ERR_AUDIT_CHAIN_BROKEN) when the history does not verify.
   */
  static open(dir: string, now: Date): RotatingAuditKey {
    makeDir(dir, 0o700);
    const keyFile = path.join(dir, AUDIT_KEY_FILE_NAME);
    const historyFile = path.join(dir, AUDIT_KEY_HISTORY_FILE_NAME);
    const nextFile = path.join(dir, NEXT_KEY_FILE_NAME);
    let history = readHistory(historyFile);

    if (fs.existsSync(nextFile)) {
      const next = AuditSigningKey.loadOrCreate(nextFile);
      if (history[history.length - 1]?.keyId === next.publicKey.keyId) {
        // The rotation committed (the history names the next key) but stopped before the rename.
        ioStep(`cannot replace ${keyFile}`, () => fs.renameSync(nextFile, keyFile));
        syncDir(dir);
      } else {
        removeFile(nextFile);
      }
    }

    if (history.length === 0) {
      const existed = fs.existsSync(keyFile);
      const key = AuditSigningKey.loadOrCreate(keyFile);
      history = [introduceKey(key.publicKey, existed ? ADOPTED_VALID_FROM : now, key)];
      writeHistory(historyFile, history);
      return new RotatingAuditKey(dir, key, history);
    }
    if (!fs.existsSync(keyFile)) {
      throw new KeyUnreadableError(
        `audit key: ${keyFile} is missing but ${historyFile} names key ${history[history.length - 1]!.keyId}; restore it (the trail cannot be signed with another key)`,
      );
    }
    const key = AuditSigningKey.loadOrCreate(keyFile);
    const expected = history[history.length - 1]!.keyId;
    if (key.publicKey.keyId !== expected) {
      throw new KeyUnreadableError(
        `audit key: ${keyFile} holds key ${key.publicKey.keyId}, but the history's current key is ${expected}`,
      );
    }
    return new RotatingAuditKey(dir, key, history);
  }

  /** The key that signs now. */
  get signing(): AuditSigningKey {
    return this.current;
  }

  /** When the current key started signing. */
  get currentSince(): Date {
    return new Date(this.history[this.history.length - 1]!.validFrom);
  }

  get introductions(): readonly AuditKeyIntroduction[] {
    return this.history;
  }

  /** Every key with its window (retired ones included: they still verify what they signed). */
  ring(): AuditKeyRing {
    return this.ringCache;
  }

  /**
   * Replaces the signing key: the new one signs from `max(now, notBefore, currentSince + 1 ms)`, introduced by
   * the outgoing key, whose private half is then destroyed.
   * @param notBefore the caller's last use of the outgoing key (its last checkpoint time): the new window
   *   must start after everything the old key signed.
   */
  rotate(now: Date, notBefore?: Date): AuditKeyIntroduction {
    const keyFile = path.join(this.dir, AUDIT_KEY_FILE_NAME);
    const nextFile = path.join(this.dir, NEXT_KEY_FILE_NAME);
    const validFrom = new Date(
      Math.max(now.getTime(), notBefore?.getTime() ?? 0, this.currentSince.getTime() + 1),
    );
    removeFile(nextFile);
    const next = AuditSigningKey.loadOrCreate(nextFile);
    const intro = introduceKey(next.publicKey, validFrom, this.current);
    const history = [...this.history, intro];
    try {
      writeHistory(path.join(this.dir, AUDIT_KEY_HISTORY_FILE_NAME), history);
    } catch (e) {
      removeFile(nextFile);
      throw e;
    }
    // Committed: from here a crash is finished by the next open.
    ioStep(`cannot replace ${keyFile}`, () => fs.renameSync(nextFile, keyFile));
    syncDir(this.dir);
    this.current = next;
    this.history = history;
    this.ringCache = ringFromIntroductions(history);
    return intro;
  }
}

function readHistory(file: string): AuditKeyIntroduction[] {
  if (!fs.existsSync(file)) return [];
  const text = ioStep(`cannot read ${file}`, () => fs.readFileSync(file, 'utf8'));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AuditChainBrokenError(`${file} is not JSON`);
  }
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new AuditChainBrokenError(`${file} holds no "keys" list`);
  const history = keys.map(parseKeyIntroduction);
  // Verifies signatures and order now, so a tampered history stops the start-up.
  ringFromIntroductions(history);
  return history;
}

function writeHistory(file: string, history: readonly AuditKeyIntroduction[]): void {
  writeFileAtomic(file, `${JSON.stringify({ version: 1, keys: history }, null, 2)}\n`, 0o600);
}
