/**
 * The keys that sign JWT-SVIDs for the trust domain (JWT-SVID standard): EC P-256 (ES256, the standard's
 * default), kept by the server's key manager like the X.509 CA keys (0600 PKCS#8 in `keys/`), so tokens issued
 * before a restart still validate after it. Each public key is published to agents and in the SPIFFE bundle
 * with its `kid` (JWT-SVID §3).
 *
 * Rotation follows the CA's schedule, as SPIRE rotates its JWT keys with its CA: each key lives `keyTtl` (the
 * CA TTL); the next key is prepared — published, not yet signing — at half the active key's life, so every
 * verifier has it before the first token it signs appears, and becomes the signing key when a sixth is
 * left (and never sooner than a bundle refresh interval after it was published). The retired key stays published until every token it signed has expired (retirement + the longest
 * JWT-SVID lifetime + clock skew), then it is removed and its private key deleted.
 *
 * Key states live in a small JSON file beside the keys (`keys/jwt-keys.json`, 0600), written atomically; keys
 * are created before the state that names them and deleted after it is gone, so a crash leaves at worst an
 * orphan key that the next start removes. A data dir from before rotation holds one key (`jwt-svid-es256-1`)
 * and no state: it is adopted as the active key, so its tokens keep validating.
 *
 * Signing uses node:crypto with the IEEE P1363 (r||s) signature encoding that JWS requires for ECDSA.
 */
import { ifNotFound } from '../../internal/not-found';
import { createHash, randomUUID, sign, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import { JWT_SVID_USE, type SpiffeBundleJwk } from '../../bundle/spiffe-bundle-format';
import type { CaLogger, KeyManager } from '../../ca';
import { ioStep, writeFileAtomic } from '../../internal/secure-file';
import { CaNotReadyError, isLanyardError, KeyUnreadableError } from '../../errors';
import { AsyncMutex } from '../../internal/async-mutex';

/** The key manager's id of the single JWT key of data dirs from before rotation. */
export const LEGACY_JWT_KEY_ID = 'jwt-svid-es256-1';
/** Prefix of JWT key ids in the key manager; start-up removes unreferenced keys with it, and only those. */
export const JWT_KEY_ID_PREFIX = 'jwt-svid-';
/** The state file's name in the key directory. */
export const JWT_STATE_FILE_NAME = 'jwt-keys.json';
/** JWT-SVIDs are bearer tokens: short-lived (JWT-SVID §5 advises short lifetimes). The longest we issue. */
export const MAX_JWT_SVID_TTL_SECONDS = 300;
/** How far a verifier's clock may be behind ours when it checks `exp`. */
export const JWT_CLOCK_SKEW_SECONDS = 60;

export interface JwtSvidClaims {
  /** Set by `sign` from the authority's issuer (oidc_discovery.issuer); absent when none is configured. */
  iss?: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
}

export type JwtKeyState = 'prepared' | 'active' | 'retired';

/** One JWT key as kept in the state file. Times are ISO 8601 UTC. */
export interface JwtKeyRecord {
  /** Key manager id. */
  id: string;
  state: JwtKeyState;
  createdAt: string;
  /** No token is signed with it from then on (the next key is active by then). */
  notAfter: string;
  activatedAt?: string;
  retiredAt?: string;
}

/** A published JWT key, for the bundle and for node agents (FetchEntries). */
export interface JwtAuthorityKey {
  keyId: string;
  publicKey: KeyObject;
  /** Until when verifiers need it: its notAfter, or for a retired key when its last token has expired. */
  expiresAt: Date;
  state: JwtKeyState;
}

export interface JwtAuthorityOptions {
  /** Lifetime of each key (the server passes ca.ttl). Default 24 h. */
  keyTtlSeconds?: number;
  /** Longest JWT-SVID lifetime; a retired key is published this long (plus skew) after it stops signing. */
  maxTokenTtlSeconds?: number;
  /** Where key states are kept; absent: in memory only (a memory key manager, tests). */
  stateFile?: string;
  clock?: () => Date;
  logger?: CaLogger;
  /** The `iss` every token carries (oidc_discovery.issuer), so OIDC relying parties can accept it. */
  issuer?: string;
}

/** What one `tick` did: kids of keys prepared, activated, and removed (their last tokens expired). */
export interface JwtTickResult {
  prepared?: string;
  activated?: string;
  removed: string[];
}

interface LoadedKey {
  record: JwtKeyRecord;
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

const silent: CaLogger = { info: () => {}, warn: () => {}, error: () => {} };

export class JwtAuthority {
  private readonly keys: KeyManager;
  private readonly ttlMs: number;
  private readonly publishAfterRetireMs: number;
  /** How long a prepared key is published before it may sign: what bundle pollers need to fetch it. */
  private readonly publishLeadMs: number;
  private readonly stateFile: string | undefined;
  private readonly clock: () => Date;
  private readonly log: CaLogger;
  private readonly mutex = new AsyncMutex();
  private loaded: readonly LoadedKey[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly issuer: string | undefined;

  private constructor(keys: KeyManager, options: JwtAuthorityOptions) {
    this.keys = keys;
    this.ttlMs = (options.keyTtlSeconds ?? 24 * 3600) * 1000;
    this.publishAfterRetireMs =
      ((options.maxTokenTtlSeconds ?? MAX_JWT_SVID_TTL_SECONDS) + JWT_CLOCK_SKEW_SECONDS) * 1000;
    // As the CA's bundle refresh hint: a twelfth of the lifetime, at most 5 minutes.
    this.publishLeadMs = Math.min(this.ttlMs / 12, 300_000);
    this.stateFile = options.stateFile;
    this.clock = options.clock ?? (() => new Date());
    this.log = options.logger ?? silent;
    this.issuer = options.issuer;
  }

  /** Loads the keys (adopting a pre-rotation key), removes orphans, and brings rotation up to date. */
  static async open(keys: KeyManager, options: JwtAuthorityOptions = {}): Promise<JwtAuthority> {
    const a = new JwtAuthority(keys, options);
    await a.mutex.run(async () => {
      await a.load();
      await a.step(a.clock());
    });
    return a;
  }

  /** The `kid` tokens are signed with now: derived from the public key, so it names exactly one key. */
  get keyId(): string {
    return this.active().kid;
  }

  /** The public half of the signing key. */
  get publicKey(): KeyObject {
    return this.active().publicKey;
  }

  /** When the signing key stops signing at the latest. */
  get notAfter(): Date {
    return new Date(this.active().record.notAfter);
  }

  /** Every key verifiers need now: the prepared one, the active one, and retired ones with live tokens. */
  authorities(): JwtAuthorityKey[] {
    return this.loaded.map((k) => ({
      keyId: k.kid,
      publicKey: k.publicKey,
      expiresAt: this.publishedUntil(k.record),
      state: k.record.state,
    }));
  }

  /** The same keys as entries of the SPIFFE bundle document: use jwt-svid, with their kid (JWT-SVID §3). */
  jwks(): SpiffeBundleJwk[] {
    return this.loaded.map((k) => {
      const { kty, ...params } = k.publicKey.export({ format: 'jwk' });
      return { kty: String(kty), ...params, use: JWT_SVID_USE, kid: k.kid };
    });
  }

  /** A compact JWS (header.payload.signature), ES256, with the active key's `kid` and our `iss`, if any. */
  sign(claims: JwtSvidClaims): string {
    const key = this.active();
    const header = { alg: 'ES256', kid: key.kid, typ: 'JWT' };
    const payload = this.issuer !== undefined ? { iss: this.issuer, ...claims } : claims;
    const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(payload))}`;
    const signature = sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }

  /** Does what is due at `now`: removes keys whose tokens have all expired, prepares, activates. */
  tick(now: Date = this.clock()): Promise<JwtTickResult> {
    return this.mutex.run(() => this.step(now));
  }

  /** Called after the published keys changed (prepared, activated, removed). Returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** When `tick` next has something to do (a timer may sleep until then; ticking earlier is harmless). */
  nextCheckAt(): Date {
    const times: number[] = [];
    for (const k of this.loaded) {
      const r = k.record;
      if (r.state === 'active') {
        const t = this.times(r);
        const prepared = this.loaded.find((o) => o.record.state === 'prepared');
        times.push(
          prepared !== undefined
            ? Math.max(t.activateAt, Date.parse(prepared.record.createdAt) + this.publishLeadMs)
            : t.prepareAt,
        );
        times.push(Date.parse(r.notAfter));
      } else if (r.state === 'retired') {
        times.push(this.publishedUntil(r).getTime());
      }
    }
    return new Date(times.length > 0 ? Math.min(...times) : this.clock().getTime() + 60_000);
  }

  msUntilNextCheck(): number {
    return Math.max(0, this.nextCheckAt().getTime() - this.clock().getTime());
  }

  // --- internals ---

  private active(): LoadedKey {
    const a = this.loaded.find((k) => k.record.state === 'active');
    if (a === undefined) throw new CaNotReadyError('no JWT-SVID signing key is active');
    return a;
  }

  private times(r: JwtKeyRecord): { prepareAt: number; activateAt: number } {
    const start = Date.parse(r.createdAt);
    const life = Date.parse(r.notAfter) - start;
    return { prepareAt: start + life / 2, activateAt: start + (life * 5) / 6 };
  }

  private publishedUntil(r: JwtKeyRecord): Date {
    if (r.state === 'retired' && r.retiredAt !== undefined) {
      return new Date(Math.min(Date.parse(r.notAfter), Date.parse(r.retiredAt)) + this.publishAfterRetireMs);
    }
    return new Date(Date.parse(r.notAfter) + this.publishAfterRetireMs);
  }

  private async load(): Promise<void> {
    const records = this.readState();
    const loaded: LoadedKey[] = [];
    if (records === undefined) {
      // No state yet: a data dir from before rotation may hold the one key there was.
      const legacy = await this.getKeyIfAny(LEGACY_JWT_KEY_ID);
      if (legacy !== undefined) {
        const now = this.clock();
        const record: JwtKeyRecord = {
          id: LEGACY_JWT_KEY_ID,
          state: 'active',
          createdAt: now.toISOString(),
          notAfter: new Date(now.getTime() + this.ttlMs).toISOString(),
          activatedAt: now.toISOString(),
        };
        loaded.push({ record, kid: kidOf(legacy.publicKey), ...legacy });
        this.log.info(
          { kid: kidOf(legacy.publicKey) },
          'JWT-SVID key from before rotation adopted as the active key',
        );
      }
    } else {
      for (const record of records) {
        const key = await this.getKeyIfAny(record.id);
        if (key === undefined) {
          this.log.error({ keyId: record.id, state: record.state }, 'JWT-SVID key missing; dropped');
          continue;
        }
        loaded.push({ record, kid: kidOf(key.publicKey), ...key });
      }
    }
    await this.commit(loaded);
    const referenced = new Set(loaded.map((k) => k.record.id));
    for (const id of await this.keys.listKeys()) {
      if (id.startsWith(JWT_KEY_ID_PREFIX) && !referenced.has(id)) {
        await this.keys.deleteKey(id);
        this.log.info({ keyId: id }, 'removed a JWT-SVID key that no state refers to');
      }
    }
  }

  private async step(now: Date): Promise<JwtTickResult> {
    const result: JwtTickResult = { removed: [] };
    const t = now.getTime();
    // Retired keys whose last token has expired leave the bundle; then their private key goes.
    const gone = this.loaded.filter(
      (k) =>
        (k.record.state === 'retired' || Date.parse(k.record.notAfter) <= t) &&
        this.publishedUntil(retire(k.record, now)).getTime() <= t,
    );
    if (gone.length > 0) {
      await this.commit(this.loaded.filter((k) => !gone.includes(k)));
      for (const k of gone) {
        await this.deleteQuietly(k.record.id);
        result.removed.push(k.kid);
        this.log.info({ kid: k.kid }, 'JWT-SVID key removed (every token it signed has expired)');
      }
    }
    let active = this.loaded.find((k) => k.record.state === 'active');
    if (active === undefined || Date.parse(active.record.notAfter) <= t) {
      // First start, or the active key outlived its time (downtime): a prepared key takes over, or a new one.
      const prepared = this.loaded.find(
        (k) => k.record.state === 'prepared' && Date.parse(k.record.notAfter) > t,
      );
      const next = prepared ?? (await this.create(now, 'prepared'));
      if (prepared === undefined) result.prepared = next.kid;
      await this.activate(next, now);
      result.activated = next.kid;
      active = next;
    }
    const times = this.times(active.record);
    let prepared = this.loaded.find((k) => k.record.state === 'prepared');
    if (prepared === undefined && t >= times.prepareAt) {
      prepared = await this.create(now, 'prepared');
      result.prepared = prepared.kid;
    }
    // A key prepared late (ticks stopped for a while) is still published for a while before it signs.
    if (
      prepared !== undefined &&
      t >= times.activateAt &&
      t >= Date.parse(prepared.record.createdAt) + this.publishLeadMs
    ) {
      await this.activate(prepared, now);
      result.activated = prepared.kid;
    }
    return result;
  }

  private async create(now: Date, state: JwtKeyState): Promise<LoadedKey> {
    const id = `${JWT_KEY_ID_PREFIX}${randomUUID()}`;
    const key = await this.keys.generateKey(id, 'ec-p256');
    const record: JwtKeyRecord = {
      id,
      state,
      createdAt: now.toISOString(),
      notAfter: new Date(now.getTime() + this.ttlMs).toISOString(),
    };
    const loaded: LoadedKey = {
      record,
      kid: kidOf(key.publicKey),
      privateKey: key.privateKey,
      publicKey: key.publicKey,
    };
    try {
      await this.commit([...this.loaded, loaded]);
    } catch (e) {
      await this.deleteQuietly(id);
      throw e;
    }
    this.log.info(
      { kid: loaded.kid, notAfter: record.notAfter },
      'JWT-SVID key prepared (published, not yet signing)',
    );
    return loaded;
  }

  /** `next` signs from now on; the key that signed until now is retired (still published). */
  private async activate(next: LoadedKey, now: Date): Promise<void> {
    const at = now.toISOString();
    const updated = this.loaded.map((k): LoadedKey => {
      if (k === next) return { ...k, record: { ...k.record, state: 'active', activatedAt: at } };
      if (k.record.state === 'active') return { ...k, record: retire(k.record, now) };
      return k;
    });
    await this.commit(updated);
    this.log.info({ kid: next.kid }, 'JWT-SVID key activated');
  }

  /** The new state, durable first (when there is a file), then in memory. */
  private async commit(next: readonly LoadedKey[]): Promise<void> {
    if (this.stateFile !== undefined) {
      const text = `${JSON.stringify({ version: 1, keys: next.map((k) => k.record) }, null, 2)}\n`;
      writeFileAtomic(this.stateFile, text, 0o600);
    }
    this.loaded = Object.freeze([...next]);
    for (const l of this.listeners) {
      try {
        l();
      } catch (e) {
        // A broken listener must not undo a committed rotation.
        this.log.error(
          { err: isLanyardError(e) ? { code: e.code, message: e.message } : { message: 'unexpected' } },
          'JWT key listener threw',
        );
      }
    }
  }

  private readState(): JwtKeyRecord[] | undefined {
    const file = this.stateFile;
    if (file === undefined || !fs.existsSync(file)) return undefined;
    const text = ioStep(`cannot read ${file}`, () => fs.readFileSync(file, 'utf8'));
    let keys: unknown;
    try {
      keys = (JSON.parse(text) as { keys?: unknown }).keys;
    } catch {
      keys = undefined;
    }
    if (!Array.isArray(keys) || !keys.every(isRecord)) {
      throw new KeyUnreadableError(`${file} is not a JWT key state file`);
    }
    return keys;
  }

  private async getKeyIfAny(
    id: string,
  ): Promise<{ privateKey: KeyObject; publicKey: KeyObject } | undefined> {
    const k = await ifNotFound(
      () => this.keys.getKey(id),
      () => undefined,
    );
    return k === undefined ? undefined : { privateKey: k.privateKey, publicKey: k.publicKey };
  }

  private async deleteQuietly(id: string): Promise<void> {
    try {
      await this.keys.deleteKey(id);
    } catch (e) {
      this.log.warn(
        {
          keyId: id,
          err: isLanyardError(e) ? { code: e.code, message: e.message } : { message: 'unexpected' },
        },
        'could not delete a JWT-SVID key; removed at the next start',
      );
    }
  }
}

function retire(r: JwtKeyRecord, now: Date): JwtKeyRecord {
  if (r.state === 'retired') return r;
  return { ...r, state: 'retired', retiredAt: now.toISOString() };
}

function isRecord(v: unknown): v is JwtKeyRecord {
  const o = v as Record<string, unknown> | null;
  return (
    o !== null &&
    typeof o === 'object' &&
    typeof o.id === 'string' &&
    (o.state === 'prepared' || o.state === 'active' || o.state === 'retired') &&
    typeof o.createdAt === 'string' &&
    typeof o.notAfter === 'string' &&
    !Number.isNaN(Date.parse(o.createdAt)) &&
    !Number.isNaN(Date.parse(o.notAfter))
  );
}

/** The `kid`: SHA-256 of the SPKI, base64url, 32 characters. */
function kidOf(publicKey: KeyObject): string {
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  return createHash('sha256').update(spki).digest('base64url').slice(0, 32);
}

function b64(s: string): string {
  return Buffer.from(s).toString('base64url');
}
