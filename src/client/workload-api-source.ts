/**
 * An X509Source backed by the SPIFFE Workload API (a Lanyard node agent, or any SPIFFE agent): one
 * FetchX509SVID stream with the `workload.spiffe.io: true` header, whose every message replaces the SVID and
 * the bundle and emits `update`. When the stream fails (agent restarting, not yet entitled), it reconnects
 * with backoff and the current SVID keeps serving until it expires, exactly like the server-backed source.
 */
import * as grpc from '@grpc/grpc-js';
import { createPrivateKey } from 'node:crypto';
import { X509Bundle } from '../bundle';
import { AgentContextOidMismatchError, NotEntitledError } from '../errors';
import { SpiffeWorkloadAPIClient, type X509SVIDResponse } from '../gen/spiffe/workload/workload';
import { TrustDomain } from '../spiffe';
import { readTlv } from '../x509/der';
import { notReady } from './static-x509-source';
import { toX509Svid } from '../svid/x509-svid';
import { resolveWorkloadEndpoint } from './workload-endpoint';
import type { X509Source } from './x509-source';
import type { X509Svid } from '../svid/x509-svid';
import { X509SourceEmitter } from './x509-source-events';
import { currentSvid } from './current-svid';

/** The Workload Endpoint standard's security header. */
export const WORKLOAD_API_HEADER = 'workload.spiffe.io';

export interface WorkloadApiX509SourceOptions {
  /**
   * Path of the agent's Unix socket, or a `unix:///path` address. Default: the SPIFFE_ENDPOINT_SOCKET
   * environment variable, as go-spiffe reads it.
   */
  socketPath?: string;
  /** When the workload is entitled to several SVIDs: the one to use (default: the first, per the standard). */
  spiffeId?: string;
  /** How long `connect` waits for the first SVID; default 30 s. */
  timeoutMs?: number;
  /** OID of the agent-context extension: the issuing server's `agent_context.oid`. Default 1.3.6.1.4.1.262144.1.1. */
  agentContextOid?: string;
}

const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 10_000;

export class WorkloadApiX509Source extends X509SourceEmitter implements X509Source {
  private svid: X509Svid | undefined;
  private bundles = new Map<string, X509Bundle>();
  private call: grpc.ClientReadableStream<X509SVIDResponse> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  private readonly client: SpiffeWorkloadAPIClient;
  /** The socket in use, resolved from the options or SPIFFE_ENDPOINT_SOCKET. */
  readonly socketPath: string;

  private constructor(
    private readonly opts: WorkloadApiX509SourceOptions,
    socketPath: string,
  ) {
    super();
    this.socketPath = socketPath;
    this.client = new SpiffeWorkloadAPIClient(`unix://${socketPath}`, grpc.credentials.createInsecure());
  }

  /**
   * Opens the stream and resolves with the source once the first SVID arrived.
   * Rejects with ConfigError when no socket is given and SPIFFE_ENDPOINT_SOCKET is unset or not a unix: URI.
   */
  static connect(opts: WorkloadApiX509SourceOptions = {}): Promise<WorkloadApiX509Source> {
    let socketPath: string;
    try {
      socketPath = resolveWorkloadEndpoint(opts.socketPath);
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    const source = new WorkloadApiX509Source(opts, socketPath);
    return new Promise((resolve, reject) => {
      let lastError: Error | undefined;
      const timer = setTimeout(() => {
        void source.close();
        // The last refusal (not entitled, agent not ready, nothing listening) is what the caller can act on.
        const why = lastError !== undefined ? `: last error: ${lastError.message}` : '';
        reject(notReady(`no X.509-SVID from the Workload API at ${socketPath} in time${why}`));
      }, opts.timeoutMs ?? 30_000);
      const onUpdate = (): void => {
        clearTimeout(timer);
        source.off('update', onUpdate);
        resolve(source);
      };
      source.on('update', onUpdate);
      // Until the first SVID arrives, errors only lead to retries; after it, listeners see them. A context under
      // another OID is this side's configuration, which no retry changes: refused at once, naming both OIDs.
      source.on('error', (e) => {
        lastError = e;
        if (!(e instanceof AgentContextOidMismatchError)) return;
        clearTimeout(timer);
        void source.close();
        reject(e);
      });
      source.open();
    });
  }

  getX509Svid(): X509Svid {
    return currentSvid(this.closed ? undefined : this.svid, 'no X.509-SVID from the Workload API yet');
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle | undefined {
    return this.closed ? undefined : this.bundles.get(td.name);
  }

  close(): Promise<void> {
    this.closed = true;
    if (this.retry !== undefined) clearTimeout(this.retry);
    this.call?.cancel();
    this.client.close();
    this.svid = undefined;
    this.removeAllListeners();
    return Promise.resolve();
  }

  private open(): void {
    if (this.closed) return;
    const md = new grpc.Metadata();
    md.set(WORKLOAD_API_HEADER, 'true');
    const call = this.client.fetchX509Svid({}, md);
    this.call = call;
    call.on('data', (res: X509SVIDResponse) => {
      try {
        this.apply(res);
        this.failures = 0;
        this.emit('update');
      } catch (e) {
        this.emit('error', e instanceof Error ? e : new Error(String(e)));
      }
    });
    call.on('error', (e: grpc.ServiceError) => {
      if (this.closed) return;
      this.emit('error', e);
      this.reconnect();
    });
    call.on('end', () => this.reconnect());
  }

  private reconnect(): void {
    if (this.closed || this.retry !== undefined) return;
    this.failures++;
    const delay = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.min(this.failures - 1, 16));
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.open();
    }, delay);
    this.retry.unref();
  }

  private apply(res: X509SVIDResponse): void {
    const chosen =
      this.opts.spiffeId === undefined
        ? res.svids[0]
        : res.svids.find((s) => s.spiffeId === this.opts.spiffeId);
    if (chosen === undefined) {
      throw new NotEntitledError(
        `the Workload API sent no SVID${this.opts.spiffeId ? ` for ${this.opts.spiffeId}` : ''}`,
      );
    }
    const key = createPrivateKey({ key: Buffer.from(chosen.x509SvidKey), format: 'der', type: 'pkcs8' });
    const svid = toX509Svid(splitDer(chosen.x509Svid), key, this.opts);
    const bundles = new Map<string, X509Bundle>();
    const own = svid.id.trustDomain;
    bundles.set(own.name, X509Bundle.fromDer(own, splitDer(chosen.bundle)));
    for (const [tdId, der] of Object.entries(res.federatedBundles)) {
      const td = TrustDomain.parse(tdId.replace(/^spiffe:\/\//, ''));
      bundles.set(td.name, X509Bundle.fromDer(td, splitDer(der)));
    }
    this.svid = svid;
    this.bundles = bundles;
  }
}

/** DER certificates back to back, as the Workload API sends chains and bundles. */
export function splitDer(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < buf.length) {
    const tlv = readTlv(buf, off);
    out.push(new Uint8Array(buf.subarray(off, tlv.end)));
    off = tlv.end;
  }
  return out;
}
