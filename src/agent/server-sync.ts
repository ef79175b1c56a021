/**
 * Keeps the agent's cache in step with the server: fetches the entries under the agent, obtains an SVID for
 * each entry that has none, whose entry changed, or that is past half its lifetime (one fresh key per SVID,
 * generated here; only CSRs leave the agent), and refreshes the bundle and JWT keys. Runs every
 * `intervalMs`; after a failure it retries with exponential backoff (capped), while the cache keeps serving
 * what it holds until it expires. A call that does not reach the server drops the channel (the next attempt
 * dials afresh); a new agent SVID gets a new one.
 * A sync that finds its server unavailable runs again, whole, on the next server of the database.
 */
import * as grpc from '@grpc/grpc-js';
import { createPublicKey } from 'node:crypto';
import { X509Bundle } from '../bundle';
import { federatedBundlesFromProto } from '../client/federated-bundles';
import { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials } from '../client/server-credentials';
import { isFailoverError, type ServerEndpoints } from '../client/server-endpoints';
import { InternalError } from '../errors';
import {
  NodeServiceClient,
  type BatchNewX509SvidResponse,
  type FetchEntriesResponse,
  type NewJwtSvidResponse,
} from '../gen/lanyard/v1/node';
import type { Bundle } from '../gen/lanyard/v1/types';
import type { Logger } from '../internal/logging';
import { MAX_X509_SVID_BATCH } from '../internal/node-api-limits';
import { TrustDomain } from '../spiffe';
import { toX509Svid, type X509Svid } from '../svid/x509-svid';
import { resolveAgentContextOid } from '../x509/agent-context/oid';
import { ParsedCertificate } from '../x509/certificate';
import { createCsr } from '../x509/csr';
import { generateSigningKeyPair } from '../x509/keys';
import type { AgentCache, CachedEntry, CachedIssuance, CachedJwt } from './cache';
import type { NodeIdentity } from './node-identity';

export const SYNC_DEFAULTS = Object.freeze({ intervalMs: 5_000, minBackoffMs: 250, maxBackoffMs: 30_000 });
const CALL_DEADLINE_MS = 15_000;

export interface SyncOptions {
  servers: ServerEndpoints;
  identity: NodeIdentity;
  cache: AgentCache;
  /** The bundle the agent was started with: trusted until the server's own arrives. */
  bootstrapBundle: X509Bundle;
  clock: () => Date;
  logger: Logger;
  intervalMs?: number;
  maxBackoffMs?: number;
  /**
   * OID the server writes agent contexts under (its `agent_context.oid`), checked by resolveAgentContextOid.
   * An SVID whose context sits under another OID fails the sync (ERR_AGENT_CONTEXT_OID_MISMATCH) and is never
   * served: workloads and their peers, configured like this agent, would refuse it. Default the default OID.
   */
  agentContextOid?: string;
  /** Told how each sync attempt went and how long it took (the agent's metrics). */
  onSync?: (ok: boolean, seconds: number) => void;
}

export class ServerSync {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private failures = 0;
  private client: { svid: X509Svid; address: string; client: NodeServiceClient } | undefined;
  private running: Promise<void> | undefined;
  /** Failed syncs since the last one that succeeded. */
  get consecutiveFailures(): number {
    return this.failures;
  }
  /** The last sync's failure, until one succeeds. */
  lastError: Error | undefined;
  private readonly agentContextOid: string;

  constructor(private readonly opts: SyncOptions) {
    this.agentContextOid = resolveAgentContextOid(opts.agentContextOid);
  }

  /** The bundle to trust for the server: the newest one it sent, else the bootstrap bundle. */
  trustBundle(): X509Bundle {
    return this.opts.cache.bundle() ?? this.opts.bootstrapBundle;
  }

  /** Runs the first sync now and schedules the rest. Resolves after the first attempt (even a failed one). */
  async start(): Promise<void> {
    await this.runOnce();
  }

  /** One sync now (tests, or a workload waiting for an SVID). Concurrent calls share one run. */
  syncNow(): Promise<void> {
    return this.runOnce();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running?.catch(() => {});
    this.client?.client.close();
    this.client = undefined;
  }

  /** A JWT-SVID for an entry under the agent, from the server. */
  async newJwtSvid(entryId: string, audience: string[]): Promise<CachedJwt> {
    const res = await this.opts.servers.call((address) =>
      this.withNodeClient(address, (client) =>
        unary<NewJwtSvidResponse>((md, o, cb) => client.newJwtSvid({ entryId, audience }, md, o, cb)),
      ),
    );
    return { token: res.token, issuedAt: this.opts.clock(), expiresAt: res.expiresAt ?? this.opts.clock() };
  }

  private runOnce(): Promise<void> {
    if (this.running !== undefined) return this.running;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const started = process.hrtime.bigint();
    const took = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    this.running = this.opts.servers
      .call((address) => this.withNodeClient(address, (client) => this.sync(client)))
      .then(
        () => {
          this.failures = 0;
          this.lastError = undefined;
          this.opts.onSync?.(true, took());
        },
        (e: unknown) => {
          this.failures++;
          this.opts.onSync?.(false, took());
          this.lastError = e instanceof Error ? e : new Error(String(e));
          this.opts.logger.warn(
            { err: describe(e), failures: this.failures },
            'sync with the server failed; serving cached SVIDs',
          );
        },
      )
      .finally(() => {
        this.running = undefined;
        this.schedule();
      });
    return this.running;
  }

  private schedule(): void {
    if (this.closed) return;
    const interval = this.opts.intervalMs ?? SYNC_DEFAULTS.intervalMs;
    const delay =
      this.failures === 0
        ? interval
        : Math.min(
            this.opts.maxBackoffMs ?? SYNC_DEFAULTS.maxBackoffMs,
            SYNC_DEFAULTS.minBackoffMs * 2 ** Math.min(this.failures - 1, 16),
          );
    this.timer = setTimeout(() => void this.runOnce(), delay);
    this.timer.unref();
  }

  /**
   * Runs `fn` with the node client for `address`. A call that did not reach the server (UNAVAILABLE,
   * DEADLINE_EXCEEDED) drops the channel, so the next attempt dials afresh: a kept channel sits out grpc-js's
   * own reconnect backoff (growing to 120 s) and fails every call until then at once, so a restarted server
   * was met seconds to minutes late, whatever the agent's own backoff said, while cached SVIDs ran out.
   */
  private async withNodeClient<T>(
    address: string,
    fn: (client: NodeServiceClient) => Promise<T>,
  ): Promise<T> {
    const client = await this.nodeClient(address);
    try {
      return await fn(client);
    } catch (e) {
      if (isFailoverError(e) && this.client?.client === client) {
        client.close();
        this.client = undefined;
      }
      throw e;
    }
  }

  private async nodeClient(address: string): Promise<NodeServiceClient> {
    const svid = await this.opts.identity.ensure();
    if (this.client?.svid === svid && this.client.address === address) return this.client.client;
    this.client?.client.close();
    const client = new NodeServiceClient(
      address,
      lanyardChannelCredentials(this.trustBundle(), svid),
      LANYARD_CHANNEL_OPTIONS,
    );
    this.client = { svid, address, client };
    return client;
  }

  private async sync(client: NodeServiceClient): Promise<void> {
    const res = await unary<FetchEntriesResponse>((md, o, cb) => client.fetchEntries({}, md, o, cb));
    if (this.closed) return;
    const { cache, clock } = this.opts;
    if (res.bundle !== undefined) cache.setBundle(bundleFromProto(res.bundle, res.jwtAuthorities));
    cache.setFederatedBundles(federatedBundlesFromProto(res.federatedBundles, cache.bundle()?.trustDomain));
    const entries: CachedEntry[] = res.entries.map((e) => ({
      id: e.id,
      spiffeId: e.spiffeId,
      selectors: e.selectors.map((s) => ({ type: s.type, value: s.value })),
      revision: Number(e.revision),
      ...(e.federatesWith.length > 0 && { federatesWith: [...e.federatesWith] }),
    }));
    cache.setEntries(entries);
    const now = clock().getTime();
    const due = entries.filter((e) => {
      const s = cache.issuance(e.id);
      if (s === undefined || s.revision !== e.revision || s.svid.id.toString() !== e.spiffeId) return true;
      return now >= s.receivedAt.getTime() + (s.svid.notAfter.getTime() - s.receivedAt.getTime()) / 2;
    });
    for (let i = 0; i < due.length; i += MAX_X509_SVID_BATCH) {
      const batch = due
        .slice(i, i + MAX_X509_SVID_BATCH)
        .map((entry) => ({ entry, ...generateSigningKeyPair('ec-p256') }));
      const out = await unary<BatchNewX509SvidResponse>((md, o, cb) =>
        client.batchNewX509Svid(
          {
            params: batch.map((b) => ({
              entryId: b.entry.id,
              csr: Buffer.from(createCsr(b.privateKey).der),
            })),
          },
          md,
          o,
          cb,
        ),
      );
      if (this.closed) return;
      const issued: CachedIssuance[] = out.svids.map((s, j) => {
        const b = batch[j];
        if (b === undefined || s.entryId !== b.entry.id || s.certChain.length === 0) {
          throw new InternalError('BatchNewX509Svid answered out of order');
        }
        // Held to the X509-SVID profile with the context under the server's OID: what workloads would refuse
        // is never served.
        const svid = toX509Svid(
          s.certChain.map((c) => new Uint8Array(c)),
          b.privateKey,
          { agentContextOid: this.agentContextOid },
        );
        return { entryId: b.entry.id, revision: b.entry.revision, svid, receivedAt: clock() };
      });
      cache.putSvids(issued);
      this.opts.logger.info({ entries: issued.map((s) => s.svid.id.toString()) }, 'workload SVIDs obtained');
    }
  }
}

function bundleFromProto(b: Bundle, jwt: FetchEntriesResponse['jwtAuthorities']): X509Bundle {
  return new X509Bundle(TrustDomain.parse(b.trustDomain), {
    x509Authorities: b.x509Authorities.map((d) => ParsedCertificate.fromDer(new Uint8Array(d))),
    jwtAuthorities: jwt.map(
      (k) =>
        [k.keyId, createPublicKey({ key: Buffer.from(k.publicKey), format: 'der', type: 'spki' })] as const,
    ),
    sequence: Number(b.sequence),
    ...(Number(b.refreshHintSeconds) > 0 && { refreshHint: Number(b.refreshHintSeconds) }),
  });
}

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;

function unary<T>(
  call: (md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: Callback<T>) => unknown,
): Promise<T> {
  return new Promise((resolve, reject) =>
    call(new grpc.Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

function describe(e: unknown): string {
  if (typeof e === 'object' && e !== null && 'details' in e && 'code' in e) {
    const se = e as grpc.ServiceError;
    return `${grpc.status[se.code] ?? se.code}: ${se.details}`;
  }
  return e instanceof Error ? e.message : String(e);
}
