import { KeyObject, randomUUID } from 'node:crypto';
import { X509Bundle } from '../bundle/x509-bundle';
import {
  CaError,
  CaNotPreparedError,
  CaNotReadyError,
  CaSelfTestFailedError,
  CertExpiredError,
  ErrorCode,
  InvalidArgumentError,
  isLanyardError,
} from '../errors';
import { TrustDomain } from '../spiffe';
import { AsyncMutex } from '../internal/async-mutex';
import type { Store } from '../store';
import type { BundleRecord } from '../store';
import { resolveAgentContextOid } from '../x509/agent-context/oid';
import { ParsedCertificate } from '../x509/certificate';
import type { KeyAlgorithm } from '../x509/keys';
import { parseCsr, type ParsedCsr } from '../x509/csr';
import { signX509SvidLeaf, type SignedLeaf } from '../x509/profiles';
import {
  CaAuthority,
  CaAuthorityInfo,
  type CaAuthorityState,
  chainAbove,
  fromRecord,
  infoOf,
  isSelfSigned,
  toRecord,
  withState,
} from './authority';
import { rootsThatMatter, sameRoots } from './bundle-roots';
import { signCrl, signEncodedCrl, type CrlContent, type CrlHeader } from './crl';
import type { KeyManager } from './key-manager';
import { mintCaCertificate } from './mint-authority';
import { isExpired, rotationTimes } from './rotation-schedule';
import { selfTestAuthority } from './self-test';
import { checkCsrSubject, type CsrSubject } from './csr-subject';
import { SigningPool, type PoolSignRequest } from './signing-pool';
import { issueServerSvid, ServerSvid } from './server-svid';
import type { UpstreamAuthority } from './upstream-authority';

/** The subset of a pino logger the CA uses. Only ids, times and error codes are logged; never a key. */
export interface CaLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface CaManagerOptions {
  trustDomain: TrustDomain | string;
  store: Store;
  keyManager: KeyManager;
  /** Lifetime of each CA certificate. Default CA_MANAGER_DEFAULTS.caTtlSeconds. */
  caTtlSeconds?: number;
  /** Key type of each CA. Default ec-p256. */
  keyAlgorithm?: KeyAlgorithm;
  /** Sign Lanyard's CAs with this organisation CA instead of making self-signed roots. */
  upstream?: UpstreamAuthority;
  /** Lifetime of the server's own SVID (capped by the CA's). Default one hour. */
  serverSvidTtlSeconds?: number;
  /** DNS SANs of the server SVID, for clients that also check the host name. Default none. */
  serverDnsNames?: string[];
  /** `spiffe_refresh_hint` of the bundle. Default: a twelfth of the CA TTL, at most 5 minutes (see below). */
  bundleRefreshHintSeconds?: number;
  /** Organization (O) of the CA subject. Default "Lanyard". */
  organization?: string;
  /**
   * OID of the agent-context extension in every SVID signed here (server `agent_context.oid`); the server's
   * own checks of its callers' SVIDs read it under the same OID. Default DEFAULT_AGENT_CONTEXT_OID.
   */
  agentContextOid?: string;
  /** Time for start-up and signing when the caller passes none; tests inject a fake clock. */
  clock?: () => Date;
  logger?: CaLogger;
  /**
   * Worker threads that check CSRs and sign SVIDs (signing-pool.ts); 0 (the default) does both on the calling
   * thread. See docs/design/performance.md for when each wins.
   */
  signingWorkers?: number;
}

/** Every default in one place. */
export const CA_MANAGER_DEFAULTS = Object.freeze({
  /** As the server config's ca.ttl default. */
  caTtlSeconds: 24 * 3600,
  keyAlgorithm: 'ec-p256' as KeyAlgorithm,
  serverSvidTtlSeconds: 3600,
  /** Upper bound of the derived refresh hint. */
  maxRefreshHintSeconds: 300,
  organization: 'Lanyard',
});

/** Prefix of CA key ids in the key manager; start-up removes unreferenced keys with it, and only those. */
export const CA_KEY_ID_PREFIX = 'x509-ca-';

/**
 * The workload's key: a KeyObject from a CSR already checked (checkCsr), or the CSR itself, checked where the
 * leaf is signed (csr-subject.ts: on this thread, or in the signing worker that signs it, in the same request).
 */
export type SvidSubjectKey =
  { publicKey: KeyObject; csr?: never; sameKeyAs?: never } | (CsrSubject & { publicKey?: never });

export type SignX509SvidRequest = SvidLeafRequest & SvidSubjectKey;

export interface SvidLeafRequest {
  spiffeId: string;
  /** Requested lifetime; the SVID never outlives the signing CA, whatever is asked. */
  ttlSeconds: number;
  dnsNames?: string[];
  /** DER of the agent-context extension value. */
  agentContextDer?: Uint8Array;
  /** Issuance time; default the manager's clock. */
  now?: Date;
}

export interface SignedX509Svid {
  /** Leaf first, then the CA certificate and any upstream intermediates. */
  chain: Uint8Array[];
  /** The leaf's fields as signed (no parse of it: the server's thread parsed every leaf it signed before). */
  leaf: SignedLeaf;
  /** The trust bundle in force when the SVID was signed (it contains the SVID's root). */
  bundle: X509Bundle;
  authorityId: string;
}

/** A manual rotation step (`lanyard ca rotate --prepare | --activate`). */
export type RotationStep = 'prepare' | 'activate';

export interface RotationStepResult {
  /** What was done: for 'next', the step it chose. */
  step: RotationStep;
  /** The CA that was prepared or activated. */
  authority: CaAuthorityInfo;
}

/** A CRL and the CA that signed it. */
export interface SignedCrl {
  authorityId: string;
  state: CaAuthorityState;
  issuer: ParsedCertificate;
  der: Uint8Array;
}

/** A CA that signs CRLs, with its key handle (CaManager.crlSigners). */
export interface CrlSigner {
  authorityId: string;
  state: CaAuthorityState;
  cert: ParsedCertificate;
  key: KeyObject;
}

/** CaManager.readiness: can the server issue now, and until when; or why not. */
export type CaReadiness = { ready: true; until: Date } | { ready: false; reason: string };

/** What one `tick` did, for logs and tests. */
export interface TickResult {
  /** Ids of CAs removed because they expired. */
  removed: string[];
  /** Id of a CA made (prepared, or made and activated at once when there was no usable active one). */
  prepared?: string;
  activated?: string;
  serverSvidRenewed: boolean;
}

type Listener<T> = (value: T) => void;

/** The state that signing reads: swapped as a whole after each committed change, never edited in place. */
interface Snapshot {
  readonly authorities: readonly CaAuthority[];
  /** The published bundle: on a store shared by several servers, the union of every server's roots. */
  readonly bundle: X509Bundle;
  /**
   * The roots this server last published for its own CAs; undefined until it published once since start (then
   * the stored bundle stands in). Equal to the bundle's roots on a store of one server.
   */
  readonly ownRoots?: readonly ParsedCertificate[];
}

/** nonRootAuthoritiesDer() per snapshot's authorities (replaced, never changed, when they change). */
const nonRootDer = new WeakMap<readonly CaAuthority[], readonly Uint8Array[]>();

const silentLogger: CaLogger = { info: () => {}, warn: () => {}, error: () => {} };

/**
 * The server's certificate authority: creates or loads the signing CA, rotates it as SPIRE does, keeps the
 * trust bundle, signs X509-SVIDs, and keeps the server's own SVID fresh.
 *
 * Persistence: every state change is one store transaction that writes the CA records and the bundle
 * together. Keys are created before the record that names them and deleted after it is gone, so a crash at
 * any point leaves every record with its key, plus at worst an orphan key that the next start removes.
 *
 * Concurrency: state changes (start, tick, prepare, activate) run one at a time; signing reads an immutable
 * snapshot and never waits for them.
 */
export class CaManager {
  readonly trustDomain: TrustDomain;
  /** The OID this CA writes the agent context under, and the server reads its callers' contexts under. */
  readonly agentContextOid: string;
  private readonly store: Store;
  private readonly keys: KeyManager;
  private readonly caTtlSeconds: number;
  private readonly keyAlgorithm: KeyAlgorithm;
  private readonly upstream: UpstreamAuthority | undefined;
  private readonly serverSvidTtlSeconds: number;
  private readonly serverDnsNames: readonly string[];
  private readonly refreshHintSeconds: number;
  private readonly organization: string;
  private readonly clock: () => Date;
  private readonly log: CaLogger;
  private readonly mutex = new AsyncMutex();
  private readonly bundleListeners = new Set<Listener<X509Bundle>>();
  private readonly serverSvidListeners = new Set<Listener<ServerSvid>>();
  private snapshot: Snapshot | undefined;
  private currentServerSvid: ServerSvid | undefined;
  private closed = false;
  private readonly pool: SigningPool | undefined;

  private constructor(options: CaManagerOptions) {
    this.trustDomain =
      options.trustDomain instanceof TrustDomain
        ? options.trustDomain
        : TrustDomain.parse(options.trustDomain);
    this.agentContextOid = resolveAgentContextOid(options.agentContextOid);
    this.store = options.store;
    this.keys = options.keyManager;
    this.caTtlSeconds = positiveInteger(
      'caTtlSeconds',
      options.caTtlSeconds ?? CA_MANAGER_DEFAULTS.caTtlSeconds,
    );
    this.keyAlgorithm = options.keyAlgorithm ?? CA_MANAGER_DEFAULTS.keyAlgorithm;
    this.upstream = options.upstream;
    this.serverSvidTtlSeconds = positiveInteger(
      'serverSvidTtlSeconds',
      options.serverSvidTtlSeconds ?? CA_MANAGER_DEFAULTS.serverSvidTtlSeconds,
    );
    this.serverDnsNames = Object.freeze([...(options.serverDnsNames ?? [])]);
    // Bundle pollers must pick up a prepared root before it is activated, a third of the CA TTL later:
    // a twelfth of the TTL gives them about four chances in that window.
    this.refreshHintSeconds = positiveInteger(
      'bundleRefreshHintSeconds',
      options.bundleRefreshHintSeconds ??
        Math.max(1, Math.min(CA_MANAGER_DEFAULTS.maxRefreshHintSeconds, Math.floor(this.caTtlSeconds / 12))),
    );
    this.organization = options.organization ?? CA_MANAGER_DEFAULTS.organization;
    this.clock = options.clock ?? (() => new Date());
    this.log = options.logger ?? silentLogger;
    const workers = options.signingWorkers ?? 0;
    if (!Number.isInteger(workers) || workers < 0 || workers > 64) {
      throw new InvalidArgumentError(`signingWorkers must be an integer from 0 to 64, not ${workers}`);
    }
    this.pool = workers > 0 ? new SigningPool(workers) : undefined;
  }

  /**
   * Loads the CA state from the store and key manager and brings it up to date: on a first start, makes
   * the CA and publishes bundle sequence 1; after a restart, reuses the same CA; after downtime, removes
   * what expired and catches up on rotation. Issues the server SVID.
   */
  static async open(options: CaManagerOptions): Promise<CaManager> {
    const ca = new CaManager(options);
    try {
      await ca.mutex.run(() => ca.load(ca.clock()));
    } catch (e) {
      await ca.pool?.close();
      throw e;
    }
    return ca;
  }

  /** Threads of the signing pool running; 0 when CSR checks and signing run on the caller's thread. */
  get signingWorkers(): number {
    return this.pool?.threads ?? 0;
  }

  /** Signing workers replaced after they stopped unexpectedly, since start. */
  get signingWorkerRestarts(): number {
    return this.pool?.restarts ?? 0;
  }

  /**
   * Stops signing worker `index` at once, as a crash would (its calls fail with ERR_CA_NOT_READY and a new
   * worker takes its place): for drills and for the tests of that path.
   */
  async stopSigningWorkerForDrill(index: number): Promise<void> {
    if (this.pool === undefined) throw new InvalidArgumentError('this CA has no signing workers');
    await this.pool.stopWorker(index);
  }

  /**
   * parseCsr (the proof of possession and key checks), in the signing pool when there is one.
   * @throws the same typed errors as parseCsr (ERR_MALFORMED_CSR, ERR_CSR_SIGNATURE_INVALID, ...);
   *   CaError(ERR_CA_NOT_READY) when the pool is closed or its worker stopped during the check.
   */
  async checkCsr(csr: Uint8Array | string): Promise<ParsedCsr> {
    return this.pool !== undefined ? this.pool.checkCsr(csr) : parseCsr(csr);
  }

  // --- reading ---

  /** The current trust bundle, with its sequence number and refresh hint. */
  bundle(): X509Bundle {
    return this.state().bundle;
  }

  /** Every CA still kept (prepared, active, old), oldest first. */
  authorities(): CaAuthorityInfo[] {
    return this.state().authorities.map(infoOf);
  }

  /**
   * The DER of every CA that is not self-signed (upstream mode), oldest first: what completes a client's leaf
   * when the TLS stack hands over the leaf alone. Computed once per set of authorities (every mTLS call asks).
   * The arrays are shared: callers must not write to them.
   */
  nonRootAuthoritiesDer(): readonly Uint8Array[] {
    const { authorities } = this.state();
    let ders = nonRootDer.get(authorities);
    if (ders === undefined) {
      ders = Object.freeze(authorities.filter((a) => !isSelfSigned(a)).map((a) => a.cert.der));
      nonRootDer.set(authorities, ders);
    }
    return ders;
  }

  /** The server's current TLS identity. */
  serverSvid(): ServerSvid {
    this.state();
    if (this.currentServerSvid === undefined) {
      throw new CaNotReadyError('the server SVID has not been issued');
    }
    return this.currentServerSvid;
  }

  /**
   * Whether the server can issue right now: an active CA that holds its key and has not expired, and an
   * unexpired server SVID (without it no TLS client accepts the listener). When ready, `until` is when that
   * stops being so unless rotation or renewal runs first. For health checks: never throws.
   */
  readiness(now: Date = this.clock()): CaReadiness {
    if (this.closed) return { ready: false, reason: 'the CA is closed' };
    if (this.snapshot === undefined) return { ready: false, reason: 'the CA has not started' };
    const active = usableActive(this.snapshot.authorities, now);
    if (active === undefined) {
      return { ready: false, reason: 'no active CA can sign (expired, or its key is unavailable)' };
    }
    const svid = this.currentServerSvid;
    if (svid === undefined || now.getTime() >= svid.notAfter.getTime()) {
      return { ready: false, reason: 'the server SVID has expired' };
    }
    return {
      ready: true,
      until: new Date(Math.min(active.cert.notAfter.getTime(), svid.notAfter.getTime())),
    };
  }

  /**
   * When `tick` next has something to do: a rotation step, an expiry, or the server SVID's renewal. A timer
   * may sleep until then (bounded, in case the clock jumps); ticking earlier is harmless.
   */
  nextCheckAt(): Date {
    const { authorities } = this.state();
    const times: number[] = [];
    const active = authorities.find((a) => a.state === 'active');
    const hasPrepared = authorities.some((a) => a.state === 'prepared');
    if (active !== undefined) {
      const t = rotationTimes(active.cert);
      times.push((hasPrepared ? t.activateAt : t.prepareAt).getTime());
    }
    for (const a of authorities) times.push(a.cert.notAfter.getTime());
    if (this.currentServerSvid !== undefined) times.push(this.currentServerSvid.renewAt.getTime());
    // Nothing scheduled only happens when no CA exists (a start that failed); check again soon.
    return new Date(times.length > 0 ? Math.min(...times) : this.clock().getTime() + 60_000);
  }

  /** Milliseconds from the manager's clock until `nextCheckAt()`; 0 when overdue. What a timer sleeps. */
  msUntilNextCheck(): number {
    return Math.max(0, this.nextCheckAt().getTime() - this.clock().getTime());
  }

  /** Called after every bundle change (the new bundle has a higher sequence). Returns an unsubscribe. */
  onBundleChange(listener: Listener<X509Bundle>): () => void {
    this.bundleListeners.add(listener);
    return () => this.bundleListeners.delete(listener);
  }

  /** Called after every new server SVID, so the TLS listener can swap its secure context. */
  onServerSvidChange(listener: Listener<ServerSvid>): () => void {
    this.serverSvidListeners.add(listener);
    return () => this.serverSvidListeners.delete(listener);
  }

  // --- signing ---

  /**
   * Signs an X509-SVID with the active CA. notAfter is capped by the CA's notAfter. A key given as its CSR is
   * checked as checkCsr would (and against `sameKeyAs`) before anything is signed, in the signing worker's one
   * round trip when there is a pool.
   * @throws CaError(ERR_CA_NOT_READY) when no CA can sign (closed, or the active CA expired because
   *   rotation did not run); the profile's errors (ERR_WRONG_TRUST_DOMAIN, ERR_INVALID_ARGUMENT, …); for a
   *   CSR, parseCsr's (ERR_MALFORMED_CSR, ERR_CSR_SIGNATURE_INVALID, …) and ERR_INVALID_ARGUMENT for a key
   *   other than `sameKeyAs`.
   */
  async signX509Svid(request: SignX509SvidRequest): Promise<SignedX509Svid> {
    const snapshot = this.state();
    const now = request.now ?? this.clock();
    const active = usableActive(snapshot.authorities, now);
    if (active === undefined) {
      throw new CaNotReadyError('no active CA can sign now (has rotation been running?)');
    }
    const fields = {
      spiffeId: request.spiffeId,
      ttlSeconds: request.ttlSeconds,
      ...(request.dnsNames !== undefined ? { dnsNames: request.dnsNames } : {}),
      ...(request.agentContextDer !== undefined ? { agentContextDer: request.agentContextDer } : {}),
      agentContextOid: this.agentContextOid,
    };
    const leaf = await this.signLeaf(active, fields, now, request);
    return {
      chain: [leaf.der, ...chainAbove(active)],
      leaf,
      bundle: snapshot.bundle,
      authorityId: active.id,
    };
  }

  private async signLeaf(
    active: CaAuthority & { key: KeyObject },
    fields: Omit<PoolSignRequest, 'publicKey' | 'nowMs'>,
    now: Date,
    key: SvidSubjectKey,
  ): Promise<SignedLeaf> {
    const pin = key.sameKeyAs !== undefined ? { sameKeyAs: key.sameKeyAs } : {};
    if (this.pool !== undefined) {
      const authority = { id: active.id, certDer: active.cert.der, key: active.key };
      const request = { ...fields, nowMs: now.getTime() };
      return key.csr !== undefined
        ? this.pool.signForCsr(authority, { ...request, csr: key.csr, ...pin })
        : this.pool.sign(authority, { ...request, publicKey: key.publicKey });
    }
    const issuer = { cert: active.cert, key: active.key };
    if (key.csr === undefined) return signX509SvidLeaf({ ...fields, publicKey: key.publicKey, issuer, now });
    const { publicKey } = checkCsrSubject({ csr: key.csr, ...pin });
    // One microtask between the check and the signature, as checkCsr then signX509Svid had: calls resumed in
    // one turn check their CSRs together and then sign together, which costs OpenSSL less than alternating
    // verification and signature (bench-issuance-pool.ts, 0 workers); the signing worker does the same per batch.
    await Promise.resolve();
    return signX509SvidLeaf({ ...fields, publicKey, issuer, now });
  }

  /**
   * One CRL per CA that holds its key (prepared, active, old), each listing `content.revoked`. The store
   * does not record which CA signed a serial, and none needs to: serials are random 127-bit numbers, so a
   * CRL listing another CA's serials revokes nothing of its own. The prepared CA gets one too, so a CRL
   * exists the moment it activates. A CA whose key could not be loaded (old, kept for its root) has none.
   */
  signCrls(content: CrlContent): SignedCrl[] {
    return this.signEachCrl((issuer) => signCrl(issuer, content));
  }

  /** signCrls with the revoked entries already encoded (crl.ts revokedEntryDer, concatenated). */
  signEncodedCrls(header: CrlHeader, entries: Uint8Array): SignedCrl[] {
    return this.signEachCrl((issuer) => signEncodedCrl(issuer, header, entries));
  }

  /**
   * The CAs that sign CRLs (every one holding its key), with their key handles: for a CRL builder that signs
   * elsewhere (the server's CRL worker thread gets each KeyObject in a structured-clone message, a handle to the
   * same in-memory key, never its bytes). Nothing may log or persist what this returns.
   */
  crlSigners(): CrlSigner[] {
    return this.state()
      .authorities.filter((a) => a.key !== undefined)
      .map((a) => ({ authorityId: a.id, state: a.state, cert: a.cert, key: a.key! }));
  }

  private signEachCrl(
    sign: (issuer: { cert: ParsedCertificate; key: KeyObject }) => Uint8Array,
  ): SignedCrl[] {
    return this.crlSigners().map((s) => ({
      authorityId: s.authorityId,
      state: s.state,
      issuer: s.cert,
      der: sign({ cert: s.cert, key: s.key }),
    }));
  }

  // --- changing ---

  /**
   * Does whatever is due at `now`: removes expired CAs (their roots leave the bundle), makes a CA when none
   * can sign, prepares the next CA at half the active one's lifetime, activates it when a sixth remains,
   * and renews the server SVID at half its lifetime or when the active CA changed. Every step that is due
   * is attempted; the first failure is rethrown after the others ran.
   */
  async tick(now: Date = this.clock()): Promise<TickResult> {
    return this.mutex.run(() => this.step(now));
  }

  /**
   * Makes the next CA now and puts its root in the bundle (`lanyard ca rotate` part 1). A CA already
   * prepared is replaced: nothing can have been signed by it.
   */
  async prepare(now: Date = this.clock()): Promise<CaAuthorityInfo> {
    return (await this.rotate('prepare', now)).authority;
  }

  /**
   * Makes the prepared CA the active one now, after it passes its self-test again (`lanyard ca rotate`
   * part 2); the previous one becomes old. Renews the server SVID under the new CA.
   * @throws CaError ERR_CA_NOT_PREPARED when nothing is prepared, ERR_CA_SELF_TEST_FAILED when the
   *   prepared CA does not work (it is then discarded; the active CA stays).
   */
  async activate(now: Date = this.clock()): Promise<CaAuthorityInfo> {
    return (await this.rotate('activate', now)).authority;
  }

  /**
   * One manual rotation step. 'next' prepares when no CA is prepared and activates otherwise; the choice is
   * made under the same lock as the step, so two operators running `lanyard ca rotate` at once get a
   * prepare and then an activation, never two prepares.
   * @throws as prepare() and activate().
   */
  async rotate(step: RotationStep | 'next', now: Date = this.clock()): Promise<RotationStepResult> {
    return this.mutex.run(async () => {
      const hasPrepared = this.state().authorities.some((a) => a.state === 'prepared');
      const chosen: RotationStep = step !== 'next' ? step : hasPrepared ? 'activate' : 'prepare';
      if (chosen === 'prepare') {
        return { step: chosen, authority: infoOf(await this.createAuthority(now, 'prepared')) };
      }
      const activated = await this.activatePrepared(now);
      await this.renewServerSvid(now, true);
      return { step: chosen, authority: infoOf(activated) };
    });
  }

  /**
   * Publishes the bundle again under a new sequence number, same roots: the SPIFFE bundle document also
   * carries keys the CA does not hold (the JWT-SVID keys, the audit keys), and when one of those rotates the
   * document changed, so pollers and watchers must see a new sequence (and watchers a new message).
   */
  async republishBundle(): Promise<void> {
    await this.mutex.run(async () => {
      const previous = this.state();
      const roots = this.rootsFor(previous.authorities);
      if (roots.length === 0) return;
      const record = await this.store.transaction((tx) =>
        tx.setBundle(this.trustDomain.name, {
          x509AuthoritiesDer: roots.map((c) => Buffer.from(c.der)),
          refreshHintSeconds: this.refreshHintSeconds,
        }),
      );
      const bundle = this.bundleOf(record);
      this.snapshot = { authorities: previous.authorities, bundle, ownRoots: roots };
      this.log.info({ bundleSequence: record.sequence }, 'trust bundle republished (its other keys changed)');
      this.emit(this.bundleListeners, bundle);
    });
  }

  /**
   * Another server sharing the store published a bundle (its CA rotated): adopt the stored one when it is newer
   * and tell the bundle listeners (WatchBundle streams, the CRL publisher), as for a change of our own.
   */
  async refreshSharedBundle(): Promise<void> {
    await this.mutex.run(async () => {
      if (this.closed || this.snapshot === undefined) return;
      const stored = await this.store.getBundle(this.trustDomain.name);
      if (stored === undefined || stored.sequence <= (this.snapshot.bundle.sequence ?? 0)) return;
      const bundle = this.bundleOf(stored);
      this.snapshot = { ...this.snapshot, bundle };
      this.log.info({ bundleSequence: stored.sequence }, 'trust bundle changed by another server');
      this.emit(this.bundleListeners, bundle);
    });
  }

  /** Stops signing and notifying; running state changes finish first. The store stays open (not ours). */
  async close(): Promise<void> {
    await this.mutex.run(() => {
      this.closed = true;
      this.bundleListeners.clear();
      this.serverSvidListeners.clear();
    });
    // Signatures already handed to the pool finish (their callers are waiting for them); new ones are refused.
    await this.pool?.close();
  }

  // --- internals ---

  private state(): Snapshot {
    if (this.closed) throw new CaNotReadyError('the CA is closed');
    if (this.snapshot === undefined) throw new CaNotReadyError('the CA has not started');
    return this.snapshot;
  }

  private async load(now: Date): Promise<void> {
    const stored = await this.store.getBundle(this.trustDomain.name);
    const loaded: CaAuthority[] = [];
    for (const record of await this.store.listCaAuthorities()) {
      const base = fromRecord(record);
      const key = await this.loadKey(base);
      loaded.push(Object.freeze(key !== undefined ? { ...base, key } : base));
    }
    this.snapshot = { authorities: loaded, bundle: this.bundleOf(stored) };
    await this.repair(now);
    await this.sweepOrphanKeys();
    let result: TickResult;
    let rotationStepFailed = false;
    try {
      result = await this.step(now);
    } catch (e) {
      // A rotation step that failed (say, preparing the next CA) must not keep a server with a working CA
      // from starting: the timer retries. Without a CA that can sign, though, there is nothing to serve.
      if (usableActive(this.state().authorities, now) === undefined || !this.currentServerSvid) throw e;
      result = { removed: [], serverSvidRenewed: false };
      rotationStepFailed = true;
    }
    this.log.info(
      {
        trustDomain: this.trustDomain.name,
        keyManager: this.keys.kind,
        upstream: this.upstream !== undefined,
        authorities: this.state().authorities.map((a) => ({
          id: a.id,
          state: a.state,
          notAfter: a.cert.notAfter,
        })),
        bundleSequence: this.state().bundle.sequence,
        ...result,
        rotationStepFailed,
      },
      'CA ready',
    );
  }

  /**
   * Start-up only: sets aside what cannot be used. A prepared CA without a working key is dropped (nothing
   * depends on it); an active one is demoted to old, so its root stays in the bundle until its SVIDs have
   * expired, and `step` makes a new active CA. A CA of the other mode (self-signed vs upstream) is treated
   * the same way, so a configuration change takes effect at once.
   */
  private async repair(now: Date): Promise<void> {
    const current = this.state().authorities;
    const ownId = `spiffe://${this.trustDomain.name}`;
    const live = current.filter((a) => {
      if (isExpired(a.cert, now)) {
        this.log.info({ authorityId: a.id, state: a.state }, 'CA expired; removed');
        return false;
      }
      if (!a.cert.uriSans.includes(ownId)) {
        // The data dir was used for another trust domain: those CAs can sign nothing here, and their roots
        // must not enter this trust domain's bundle.
        this.log.warn({ authorityId: a.id, uriSans: a.cert.uriSans }, 'CA of another trust domain; removed');
        return false;
      }
      return true;
    });
    const roots = this.rootsFor(live);
    const next: CaAuthority[] = [];
    for (const a of live) {
      if (a.state === 'old') {
        next.push(a);
        continue;
      }
      const problem =
        a.key === undefined
          ? 'its key cannot be loaded'
          : isSelfSigned(a) === (this.upstream !== undefined)
            ? `it is ${isSelfSigned(a) ? 'self-signed' : 'signed upstream'} but the configuration says otherwise`
            : this.selfTestProblem(a, roots, now);
      if (problem === undefined) {
        next.push(a);
      } else if (a.state === 'active') {
        this.log.error({ authorityId: a.id, reason: problem }, 'active CA cannot be used; retiring it');
        next.push(withState(a, 'old'));
      } else {
        this.log.warn({ authorityId: a.id, reason: problem }, 'prepared CA cannot be used; discarding it');
      }
    }
    // Also when only the bundle is stale: a changed refresh hint or upstream root set applies from this start.
    const bundle = this.state().bundle;
    const bundleStale =
      bundle.sequence === undefined ||
      bundle.refreshHint !== this.refreshHintSeconds ||
      !sameRoots(this.rootsFor(next), this.state().ownRoots ?? bundle.x509Authorities);
    if (bundleStale || next.length !== current.length || next.some((a, i) => a !== current[i])) {
      await this.commit(next, now);
    }
  }

  private async step(now: Date): Promise<TickResult> {
    const result: TickResult = { removed: [], serverSvidRenewed: false };
    let failure: unknown;
    try {
      const current = this.state().authorities;
      const expired = current.filter((a) => isExpired(a.cert, now));
      if (expired.length > 0) {
        await this.commit(
          current.filter((a) => !expired.includes(a)),
          now,
        );
        result.removed = expired.map((a) => a.id);
        for (const a of expired) this.log.info({ authorityId: a.id, state: a.state }, 'CA expired; removed');
      }

      if (usableActive(this.state().authorities, now) === undefined) {
        const made = await this.replaceUnusableActive(now);
        if (made.minted) result.prepared = made.id;
        result.activated = made.id;
      }

      const active = usableActive(this.state().authorities, now)!;
      const times = rotationTimes(active.cert);
      const prepared = this.state().authorities.find((a) => a.state === 'prepared');
      if (prepared === undefined && now >= times.prepareAt) {
        result.prepared = (await this.createAuthority(now, 'prepared')).id;
      }
      if (this.state().authorities.some((a) => a.state === 'prepared') && now >= times.activateAt) {
        result.activated = (await this.activatePrepared(now)).id;
      }
    } catch (e) {
      failure = e;
    }
    try {
      result.serverSvidRenewed = await this.renewServerSvid(now, false);
    } catch (e) {
      failure ??= e;
    }
    if (failure !== undefined) {
      this.log.error({ err: safeError(failure) }, 'CA rotation step failed');
      throw failure;
    }
    return result;
  }

  /**
   * No CA can sign: none exists yet (first start), the active one expired (downtime), or it was set aside.
   * A prepared CA is activated when there is one that works; otherwise a new CA is made and activated at once.
   */
  private async replaceUnusableActive(now: Date): Promise<{ id: string; minted: boolean }> {
    if (this.state().authorities.some((a) => a.state === 'prepared')) {
      try {
        return { id: (await this.activatePrepared(now)).id, minted: false };
      } catch (e) {
        if (!(e instanceof CaError && e.code === ErrorCode.CA_SELF_TEST_FAILED)) throw e;
        // activatePrepared discarded the broken one; fall through and make a fresh CA.
      }
    }
    return { id: (await this.createAuthority(now, 'active')).id, minted: true };
  }

  /**
   * Makes a key and a CA certificate for it, self-tests it against the bundle it will be published in, and
   * commits it with that bundle. As 'prepared' it replaces any prepared CA; as 'active' it demotes the
   * current active CA to old. On any failure before the commit the new key is deleted again.
   */
  private async createAuthority(now: Date, state: 'prepared' | 'active'): Promise<CaAuthority> {
    const id = randomUUID();
    const keyId = `${CA_KEY_ID_PREFIX}${id}`;
    const current = this.state().authorities;
    let authority: CaAuthority;
    try {
      const generated = await this.keys.generateKey(keyId, this.keyAlgorithm);
      // Sign the certificate with the key as generated, test with the key as stored: a key manager that does
      // not give back what it was given fails here, not in production.
      const stored = await this.keys.getKey(keyId);
      const minted = mintCaCertificate({
        trustDomain: this.trustDomain.name,
        id,
        privateKey: generated.privateKey,
        publicKey: generated.publicKey,
        ttlSeconds: this.caTtlSeconds,
        now,
        organization: this.organization,
        ...(this.upstream !== undefined ? { upstream: this.upstream } : {}),
      });
      authority = Object.freeze({
        id,
        state,
        cert: minted.cert,
        upstreamChain: Object.freeze([...minted.upstreamChain]),
        keyId,
        key: stored.privateKey,
        createdAt: now,
        ...(state === 'active' ? { activatedAt: now } : {}),
      });
      const next =
        state === 'prepared'
          ? [...current.filter((a) => a.state !== 'prepared'), authority]
          : [...current.map((a) => (a.state === 'active' ? withState(a, 'old') : a)), authority];
      selfTestAuthority(
        { id, cert: authority.cert, upstreamChain: authority.upstreamChain, key: stored.privateKey },
        this.trustDomain,
        this.rootsFor(next),
        now,
      );
      await this.commit(next, now);
    } catch (e) {
      await this.deleteKeyQuietly(keyId);
      this.log.error({ authorityId: id, state, err: safeError(e) }, 'making a new CA failed');
      throw e;
    }
    this.log.info(
      { authorityId: id, state, notBefore: authority.cert.notBefore, notAfter: authority.cert.notAfter },
      state === 'prepared' ? 'CA prepared' : 'CA made and activated',
    );
    return authority;
  }

  private async activatePrepared(now: Date): Promise<CaAuthority> {
    const current = this.state().authorities;
    const prepared = current.find((a) => a.state === 'prepared');
    if (prepared === undefined) {
      throw new CaNotPreparedError('no CA is prepared: prepare one first');
    }
    let key: KeyObject;
    try {
      if (isExpired(prepared.cert, now)) {
        throw new CertExpiredError(`it expired at ${prepared.cert.notAfter.toISOString()}`);
      }
      key = (await this.keys.getKey(prepared.keyId)).privateKey;
      selfTestAuthority(
        { id: prepared.id, cert: prepared.cert, upstreamChain: prepared.upstreamChain, key },
        this.trustDomain,
        this.rootsFor(current),
        now,
      );
    } catch (e) {
      const failure =
        e instanceof CaError
          ? e
          : new CaSelfTestFailedError(
              `CA ${prepared.id} failed its self-test, so it is not used: ${reasonOf(e)}`,
            );
      this.log.error(
        { authorityId: prepared.id, err: safeError(failure) },
        'prepared CA refused; discarding it',
      );
      await this.commit(
        current.filter((a) => a !== prepared),
        now,
      );
      throw failure;
    }
    const activated: CaAuthority = Object.freeze({ ...withState(prepared, 'active', now), key });
    const previous = current.find((a) => a.state === 'active');
    await this.commit(
      current.map((a) => (a === prepared ? activated : a.state === 'active' ? withState(a, 'old') : a)),
      now,
    );
    this.log.info(
      { authorityId: activated.id, previousAuthorityId: previous?.id, notAfter: activated.cert.notAfter },
      'CA activated',
    );
    return activated;
  }

  /** Issues a new server SVID when forced, when none exists, at its half-life, or when its CA is not active. */
  private async renewServerSvid(now: Date, force: boolean): Promise<boolean> {
    const active = usableActive(this.state().authorities, now);
    if (active === undefined) return false;
    const svid = this.currentServerSvid;
    if (!force && svid !== undefined && svid.authorityId === active.id && now < svid.renewAt) return false;
    this.currentServerSvid = issueServerSvid(active, {
      trustDomain: this.trustDomain.name,
      ttlSeconds: this.serverSvidTtlSeconds,
      dnsNames: this.serverDnsNames,
      now,
    });
    this.log.info(
      {
        spiffeId: this.currentServerSvid.id.toString(),
        authorityId: active.id,
        notAfter: this.currentServerSvid.notAfter,
      },
      'server SVID issued',
    );
    this.emit(this.serverSvidListeners, this.currentServerSvid);
    return true;
  }

  /**
   * Writes `next` as the whole CA state in one transaction: removed records deleted, changed ones put
   * (old before active, as the store allows one active at a time), and the bundle replaced when its roots
   * or refresh hint differ, which increments its sequence. Memory changes only after the commit; then the
   * keys of removed CAs are deleted.
   */
  private async commit(next: readonly CaAuthority[], now: Date): Promise<void> {
    const previous = this.state();
    const nextIds = new Set(next.map((a) => a.id));
    const removed = previous.authorities.filter((a) => !nextIds.has(a.id));
    const changed = next
      .filter((a) => !previous.authorities.includes(a))
      .sort((a, b) => Number(a.state === 'active') - Number(b.state === 'active'));
    const roots = this.rootsFor(next);
    // Never publish an empty bundle: it would tell verifiers to trust nothing, and it only happens on the way
    // to making a new CA (everything expired during downtime), whose commit publishes the real one.
    const bundleChanged =
      roots.length > 0 &&
      (previous.bundle.sequence === undefined ||
        !sameRoots(roots, previous.ownRoots ?? previous.bundle.x509Authorities) ||
        previous.bundle.refreshHint !== this.refreshHintSeconds);
    if (removed.length === 0 && changed.length === 0 && !bundleChanged) return;

    const record = await this.store.transaction(async (tx) => {
      for (const a of removed) await tx.deleteCaAuthority(a.id);
      for (const a of changed) await tx.putCaAuthority(toRecord(a));
      if (!bundleChanged) return undefined;
      return tx.setBundle(this.trustDomain.name, {
        x509AuthoritiesDer: roots.map((c) => Buffer.from(c.der)),
        refreshHintSeconds: this.refreshHintSeconds,
      });
    });

    const ordered = [...next].sort((a, b) => a.cert.notBefore.getTime() - b.cert.notBefore.getTime());
    // The stored record, not `roots`: on a shared store it also holds the other servers' roots.
    const bundle = record === undefined ? previous.bundle : this.bundleOf(record);
    this.snapshot = {
      authorities: Object.freeze(ordered),
      bundle,
      ...(record !== undefined
        ? { ownRoots: roots }
        : previous.ownRoots !== undefined
          ? { ownRoots: previous.ownRoots }
          : {}),
    };
    // Keys go only after their records are gone, so no committed record ever names a missing key.
    for (const a of removed) await this.deleteKeyQuietly(a.keyId);
    if (record !== undefined) {
      this.log.info(
        { bundleSequence: record.sequence, roots: roots.length, at: now },
        'trust bundle changed',
      );
      this.emit(this.bundleListeners, bundle);
    }
  }

  private rootsFor(authorities: readonly CaAuthority[]): ParsedCertificate[] {
    return rootsThatMatter(authorities, this.upstream?.roots ?? [], this.state().bundle.x509Authorities);
  }

  private bundleOf(record: BundleRecord | undefined): X509Bundle {
    if (record === undefined) return new X509Bundle(this.trustDomain);
    return new X509Bundle(this.trustDomain, {
      x509Authorities: record.x509AuthoritiesDer.map((d) => ParsedCertificate.fromDer(d)),
      sequence: record.sequence,
      refreshHint: record.refreshHintSeconds,
    });
  }

  /** The key of a stored CA, or undefined (logged) when it is missing, unreadable or not the cert's key. */
  private async loadKey(a: Omit<CaAuthority, 'key'>): Promise<KeyObject | undefined> {
    try {
      const key = await this.keys.getKey(a.keyId);
      if (!key.publicKey.equals(a.cert.publicKey)) {
        throw new InvalidArgumentError(`key ${a.keyId} is not the key of CA ${a.id}`);
      }
      return key.privateKey;
    } catch (e) {
      this.log.warn({ authorityId: a.id, keyId: a.keyId, err: safeError(e) }, 'CA key unavailable');
      return undefined;
    }
  }

  private selfTestProblem(
    a: CaAuthority,
    roots: readonly ParsedCertificate[],
    now: Date,
  ): string | undefined {
    try {
      selfTestAuthority(
        { id: a.id, cert: a.cert, upstreamChain: a.upstreamChain, key: a.key! },
        this.trustDomain,
        roots,
        now,
      );
      return undefined;
    } catch (e) {
      return reasonOf(e);
    }
  }

  /** Keys with the CA prefix that no record names: left by a crash between key creation and commit. */
  private async sweepOrphanKeys(): Promise<void> {
    const referenced = new Set(this.state().authorities.map((a) => a.keyId));
    for (const id of await this.keys.listKeys()) {
      if (id.startsWith(CA_KEY_ID_PREFIX) && !referenced.has(id)) {
        await this.keys.deleteKey(id);
        this.log.info({ keyId: id }, 'removed a CA key that no CA record refers to');
      }
    }
  }

  /** Cleanup that must not mask the error being handled; a leftover key is swept at the next start. */
  private async deleteKeyQuietly(keyId: string): Promise<void> {
    try {
      await this.keys.deleteKey(keyId);
    } catch (e) {
      this.log.warn(
        { keyId, err: safeError(e) },
        'could not delete a CA key; it will be removed at the next start',
      );
    }
  }

  private emit<T>(listeners: Set<Listener<T>>, value: T): void {
    for (const listener of listeners) {
      try {
        listener(value);
      } catch (e) {
        // A broken listener must not undo or block a committed rotation.
        this.log.error({ err: safeError(e) }, 'CA event listener threw');
      }
    }
  }
}

function usableActive(
  authorities: readonly CaAuthority[],
  now: Date,
): (CaAuthority & { key: KeyObject }) | undefined {
  const active = authorities.find((a) => a.state === 'active');
  if (active === undefined || active.key === undefined || isExpired(active.cert, now)) return undefined;
  return active as CaAuthority & { key: KeyObject };
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${name} must be an integer >= 1, got ${value}`);
  }
  return value;
}

/** As in self-test.ts: our own errors are safe to repeat; anything else is reduced to its class name. */
function reasonOf(e: unknown): string {
  if (isLanyardError(e)) return `${e.code}: ${e.message}`;
  return `unexpected ${e instanceof Error ? e.name : typeof e}`;
}

/** What of an error goes into a log line: code and message of our errors, the class name of others. */
function safeError(e: unknown): { code?: string; message: string } {
  if (isLanyardError(e)) return { code: e.code, message: e.message };
  return { message: `unexpected ${e instanceof Error ? e.name : typeof e}` };
}
