import * as fs from 'node:fs';
import { ConfigError, IoError } from '../errors';
import { type JwkKey, parseJwks } from './jwk';

/** At most one forced re-read per interval when tokens name a kid the file does not have. */
export const UNKNOWN_KID_RELOAD_INTERVAL_MS = 1000;

interface Loaded {
  keys: readonly JwkKey[];
  /** What the file looked like when read: a change in any of these means it was rewritten. */
  stamp: string;
}

/**
 * A JWKS kept in a file, followed as it changes so that key rotation needs no restart. Before every use the
 * file is stat'ed and re-read when it changed (mtime, ctime, size or inode: an atomic rename, as kubelet and
 * config-map mounts do, changes the inode). A kid the loaded set lacks forces a re-read even when the stat
 * looks unchanged, since a rewrite within the file system's timestamp granularity is invisible to stat; that
 * re-read is rate-limited so tokens with made-up kids cannot keep the server reading the file.
 *
 * A file that has become unreadable or invalid fails closed (ERR_IO): keeping the old keys could keep
 * trusting a key that the rewrite was meant to remove.
 */
export class JwksFile {
  private loaded: Loaded;
  private lastForcedReload = Number.NEGATIVE_INFINITY;

  private constructor(
    readonly file: string,
    loaded: Loaded,
    private readonly clockMs: () => number,
  ) {
    this.loaded = loaded;
  }

  /** Reads the file now. @throws ConfigError naming the file: a bad JWKS at start-up stops the server. */
  static async open(file: string, options: { clockMs?: () => number } = {}): Promise<JwksFile> {
    try {
      return new JwksFile(file, await read(file), options.clockMs ?? Date.now);
    } catch (e) {
      throw new ConfigError(`JWKS file ${file}: ${messageOf(e)}`, { cause: e });
    }
  }

  /**
   * The current keys for a token with key ID `kid`: those with that kid (else those without any kid), or every
   * key when the token names none. Re-reads the file first when it changed, or when no key has that kid.
   * @throws AttestationError(ERR_IO) when the file can no longer be read or parsed.
   */
  async keysFor(kid: string | undefined): Promise<JwkKey[]> {
    await this.refresh(false);
    let found = select(this.loaded.keys, kid);
    if (kid !== undefined && !this.loaded.keys.some((k) => k.kid === kid)) {
      const now = this.clockMs();
      if (now - this.lastForcedReload >= UNKNOWN_KID_RELOAD_INTERVAL_MS) {
        this.lastForcedReload = now;
        await this.refresh(true);
        found = select(this.loaded.keys, kid);
      }
    }
    return found;
  }

  private async refresh(force: boolean): Promise<void> {
    try {
      if (!force && (await stampOf(this.file)) === this.loaded.stamp) return;
      this.loaded = await read(this.file);
    } catch (e) {
      throw new IoError(`JWKS file ${this.file} cannot be used: ${messageOf(e)}`, {
        cause: e,
      });
    }
  }
}

async function read(file: string): Promise<Loaded> {
  // Stat before reading: if the file changes in between, the next stat differs and it is read again.
  const stamp = await stampOf(file);
  const text = await fs.promises.readFile(file, 'utf8');
  return { keys: Object.freeze(parseJwks(text)), stamp };
}

async function stampOf(file: string): Promise<string> {
  const st = await fs.promises.stat(file, { bigint: true });
  return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** By kid when the token names one; a JWKS written without kids still serves tokens that carry one. */
function select(keys: readonly JwkKey[], kid: string | undefined): JwkKey[] {
  if (kid === undefined) return [...keys];
  const named = keys.filter((k) => k.kid === kid);
  return named.length > 0 ? named : keys.filter((k) => k.kid === undefined);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
