/**
 * The client side of `scripts/bench-issuance.ts`, run in worker threads so that client work (TLS, protobuf,
 * key generation) does not share the server's event loop. N clients, each on its own connection, first
 * Attest with their pre-made join tokens one after another, then Renew over mTLS with the SVID they got.
 * Keys and CSRs are made before the clock starts: the figures are the server's, not the client's keygen.
 * When the clients are split over several workers (`--client-threads`), each worker waits at the start of each
 * phase until the main thread says every worker is there (`gated`), so the phases of all workers overlap.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { X509Bundle } from '../src/bundle';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { lanyardChannelCredentials } from '../src/client/server-credentials';
import { toX509Svid } from '../src/svid/x509-svid';
import {
  AttestationServiceClient,
  type AttestResponse,
  type AttestResult,
  RenewRequest,
  RenewResponse,
} from '../src/gen/lanyard/v1/attestation';
import { TrustDomain } from '../src/spiffe';
import { createCsr } from '../src/x509/csr';
import { generateSigningKeyPair } from '../src/x509/keys';
import { decodePemBlocks } from '../src/x509/pem';
import { ownThreadId, type PhaseCpu, threadCpuNs } from './bench-issuance-cpu';
import { ECHO_SERVICE, echoRequest, type EchoTarget } from './bench-transport-echo';

export interface ClientsJob {
  address: string;
  /** When given, client i connects to addresses[i] instead of `address` (several servers, scripts/bench-ha.ts). */
  addresses?: string[];
  trustDomain: string;
  bundlePem: string;
  /** One list of join tokens per client; its length is that client's number of Attest calls. */
  tokens: string[][];
  renewsPerClient: number;
  /** A phase stops starting calls after this long (the bench is bounded in time, not only in count). */
  phaseBudgetMs: number;
  /**
   * Wait for the main thread's `{ go: phase }` before each phase, after posting `{ ready: phase }`: several
   * workers then start each phase together (runClients with more than one thread).
   */
  gated?: boolean;
  /**
   * After Renew, the same clients call a bare grpc-js server (scripts/bench-transport-echo.ts) as many times with
   * requests and answers of a Renew's size: the transport's ceiling in the same run.
   */
  echo?: EchoTarget;
}

export interface PhaseResult {
  ops: number;
  errors: number;
  firstError?: string;
  elapsedMs: number;
  /** When the phase started and ended, ms on a clock every thread of the process shares (timeOrigin + now). */
  startedAtMs: number;
  endedAtMs: number;
  /** Latency of each successful call, ms, sorted. */
  latenciesMs: number[];
  /** CPU of every thread of the process at the phase's start and end (Linux), and this client thread's id. */
  cpu?: PhaseCpu;
}

export interface ClientsResult {
  attest: PhaseResult;
  renew: PhaseResult;
  /** The echo phase, when the job named an echo server. */
  echo?: PhaseResult;
}

/**
 * What the worker says when runClients' watchdog asks (`'probe'`): where it is and whether calls still settle.
 * A worker that does not answer is not running its event loop (blocked in a synchronous call).
 */
export interface ClientsProbe {
  stage: 'keys' | 'connect' | 'attest' | 'connect-mtls' | 'renew' | 'connect-echo' | 'echo' | 'done';
  /** Calls settled (answered or failed) so far, both phases. */
  settled: number;
  /** Calls started and not settled, with the age of the oldest, ms. */
  pending: number;
  oldestPendingMs: number;
  /** Connectivity state of each client's channel, counted by state name. */
  channels: Record<string, number>;
  /** process.getActiveResourcesInfo() of the worker, counted by kind. */
  resources: Record<string, number>;
}

interface Pending {
  key: KeyObject;
  csr: Buffer;
}

/** Separate connections per client: grpc-js would otherwise share one subchannel between equal channels. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.ssl_target_name_override': 'lanyard-server',
  'grpc.use_local_subchannel_pool': 1,
  // The client thread's own bookkeeping for a channelz service nobody queries: the bench measures the server.
  'grpc.enable_channelz': 0,
};
const CALL_DEADLINE_MS = 30_000;

function freshCsrs(count: number): Pending[] {
  return Array.from({ length: count }, () => {
    const { privateKey } = generateSigningKeyPair('ec-p256');
    return { key: privateKey, csr: Buffer.from(createCsr(privateKey).der) };
  });
}

function waitForReady(client: grpc.Client): Promise<void> {
  return new Promise((resolve, reject) =>
    client.waitForReady(Date.now() + CALL_DEADLINE_MS, (e) => (e ? reject(e) : resolve())),
  );
}

function attestOnce(client: AttestationServiceClient, token: string, csr: Buffer): Promise<AttestResult> {
  return new Promise((resolve, reject) => {
    const call = client.attest({ deadline: Date.now() + CALL_DEADLINE_MS });
    let result: AttestResult | undefined;
    call.on('data', (res: AttestResponse) => {
      if (res.step?.$case === 'result') result = res.step.value;
    });
    call.on('error', reject);
    call.on('end', () => (result ? resolve(result) : reject(new Error('stream ended without a result'))));
    call.write({
      step: {
        $case: 'params',
        value: { attestorType: 'join_token', evidence: Buffer.from(token), csr, spiffeId: '' },
      },
    });
    call.end();
  });
}

function renewOnce(client: AttestationServiceClient, csr: Buffer): Promise<RenewResponse> {
  return new Promise((resolve, reject) =>
    client.renew({ csr }, new grpc.Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (e, res) =>
      e ? reject(e) : resolve(res),
    ),
  );
}

/** Runs every client's calls concurrently (each client one call at a time) and times the whole phase. */
async function phase<T>(
  perClient: { calls: (() => Promise<T>)[] }[],
  budgetMs: number,
): Promise<{ result: PhaseResult; last: (T | undefined)[] }> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const tid = ownThreadId();
  const cpuStart = threadCpuNs();
  const started = performance.now();
  const startedAtMs = performance.timeOrigin + started;
  const stopAt = started + budgetMs;
  const last = await Promise.all(
    perClient.map(async ({ calls }) => {
      let latest: T | undefined;
      for (const call of calls) {
        if (performance.now() > stopAt) break;
        const t0 = performance.now();
        try {
          latest = await call();
          latencies.push(performance.now() - t0);
        } catch (e) {
          errors++;
          firstError ??= e instanceof Error ? e.message : String(e);
        }
      }
      return latest;
    }),
  );
  const ended = performance.now();
  const cpuEnd = threadCpuNs();
  latencies.sort((a, b) => a - b);
  return {
    result: {
      ops: latencies.length,
      errors,
      ...(firstError !== undefined ? { firstError } : {}),
      elapsedMs: ended - started,
      startedAtMs,
      endedAtMs: performance.timeOrigin + ended,
      latenciesMs: latencies,
      ...(tid !== undefined && { cpu: { start: cpuStart, end: cpuEnd, clients: [tid] } }),
    },
    last,
  };
}

/** The worker's progress, for the watchdog's probes. */
const progress = {
  stage: 'keys' as ClientsProbe['stage'],
  settled: 0,
  /** Start time of each call not yet settled, by call number. */
  pending: new Map<number, number>(),
  calls: 0,
  channels: [] as grpc.Client[],
};

/** Wraps a call so the probes see it pending (by start time) until it settles. */
async function tracked<T>(call: () => Promise<T>): Promise<T> {
  const id = ++progress.calls;
  progress.pending.set(id, performance.now());
  try {
    return await call();
  } finally {
    progress.pending.delete(id);
    progress.settled++;
  }
}

function countBy(items: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const i of items) counts[i] = (counts[i] ?? 0) + 1;
  return counts;
}

export function probe(): ClientsProbe {
  const now = performance.now();
  return {
    stage: progress.stage,
    settled: progress.settled,
    pending: progress.pending.size,
    oldestPendingMs: progress.pending.size > 0 ? now - Math.min(...progress.pending.values()) : 0,
    channels: countBy(
      progress.channels.map((c) => {
        try {
          return grpc.connectivityState[c.getChannel().getConnectivityState(false)] ?? '?';
        } catch {
          return 'closed';
        }
      }),
    ),
    resources: countBy(process.getActiveResourcesInfo()),
  };
}

/** Resolves when the main thread says phase `name` may start (at once when the job is not gated). */
const gates = new Map<string, () => void>();
function gate(job: ClientsJob, name: 'attest' | 'renew' | 'renewed' | 'echo'): Promise<void> {
  if (job.gated !== true || parentPort === null) return Promise.resolve();
  const port = parentPort;
  return new Promise((resolve) => {
    // Nothing else may keep the loop alive while it waits (idle connections are unref'd): the port does, until then.
    port.ref();
    gates.set(name, () => {
      port.unref();
      resolve();
    });
    port.postMessage({ ready: name });
  });
}

async function run(job: ClientsJob): Promise<ClientsResult> {
  const bundle = X509Bundle.fromPem(TrustDomain.parse(job.trustDomain), job.bundlePem);
  const attestCsrs = job.tokens.map((t) => freshCsrs(t.length));
  const renewCsrs = job.tokens.map(() => freshCsrs(job.renewsPerClient));
  const addressOf = (i: number): string => job.addresses?.[i] ?? job.address;
  const clients = job.tokens.map(
    (_, i) => new AttestationServiceClient(addressOf(i), lanyardChannelCredentials(bundle), CHANNEL_OPTIONS),
  );
  const mtlsClients: AttestationServiceClient[] = [];
  const echoClients: EchoClient[] = [];
  progress.channels = clients;
  try {
    // Connections (TLS handshakes) are made before the clock starts: steady-state issuance is measured.
    progress.stage = 'connect';
    await Promise.all(clients.map(waitForReady));
    await gate(job, 'attest');
    progress.stage = 'attest';
    const attest = await phase(
      clients.map((c, i) => ({
        calls: job.tokens[i]!.map((token, j) => async () => {
          const pending = attestCsrs[i]![j]!;
          const r = await tracked(() => attestOnce(c, token, pending.csr));
          // Parsed once the clock has stopped: the phase measures issuance, not the client's own checks.
          return { privateKey: pending.key, chain: r.svid!.certChain };
        }),
      })),
      job.phaseBudgetMs,
    );
    // Each client renews with the SVID its last attestation gave it, over its own mTLS connection.
    for (const [i, got] of attest.last.entries()) {
      if (got === undefined)
        throw new Error(`a client got no SVID to renew with: ${attest.result.firstError}`);
      const svid = toX509Svid(
        got.chain.map((c) => new Uint8Array(c)),
        got.privateKey,
      );
      mtlsClients.push(
        new AttestationServiceClient(addressOf(i), lanyardChannelCredentials(bundle, svid), CHANNEL_OPTIONS),
      );
    }
    progress.channels = mtlsClients;
    progress.stage = 'connect-mtls';
    await Promise.all(mtlsClients.map(waitForReady));
    await gate(job, 'renew');
    progress.stage = 'renew';
    const renew = await phase(
      mtlsClients.map((c, i) => ({
        calls: renewCsrs[i]!.map((pending) => () => tracked(() => renewOnce(c, pending.csr))),
      })),
      job.phaseBudgetMs,
    );
    // The main thread may measure the Renew phase from outside (perf): it stops when every worker is past it.
    await gate(job, 'renewed');
    const echo =
      job.echo === undefined ? undefined : await echoPhase(job, job.echo, renewCsrs, renew.last, echoClients);
    progress.stage = 'done';
    return { attest: attest.result, renew: renew.result, ...(echo !== undefined && { echo }) };
  } finally {
    for (const c of [...clients, ...mtlsClients, ...echoClients]) c.close();
  }
}

type EchoClient = grpc.Client & {
  echo(
    req: Buffer,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    done: grpc.requestCallback<Buffer>,
  ): grpc.ClientUnaryCall;
};
const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'TransportEcho') as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ChannelOptions,
) => EchoClient;

/**
 * The echo phase: every client, on a connection of its own made as its Renew connection was, sends as many
 * requests of a RenewRequest's size and gets answers of a RenewResponse's size (the last answer this client
 * got, encoded) from a handler that does nothing else.
 */
async function echoPhase(
  job: ClientsJob,
  target: EchoTarget,
  renewCsrs: Pending[][],
  renewed: (RenewResponse | undefined)[],
  echoClients: EchoClient[],
): Promise<PhaseResult> {
  const bundle = X509Bundle.fromPem(TrustDomain.parse(target.trustDomain), target.bundlePem);
  const svid = toX509Svid(
    decodePemBlocks(target.clientChainPem, 'CERTIFICATE'),
    createPrivateKey(target.clientKeyPem),
  );
  for (let i = 0; i < renewCsrs.length; i++) {
    echoClients.push(
      new EchoClient(target.address, lanyardChannelCredentials(bundle, svid), CHANNEL_OPTIONS),
    );
  }
  progress.channels = echoClients;
  progress.stage = 'connect-echo';
  await Promise.all(echoClients.map(waitForReady));
  const requests = renewCsrs.map((csrs, i) => {
    const answer = renewed[i];
    if (answer === undefined) throw new Error('a client got no Renew answer to size its echo by');
    const answerBytes = RenewResponse.encode(answer).finish().length;
    return csrs.map((p) => echoRequest(RenewRequest.encode({ csr: p.csr }).finish().length, answerBytes));
  });
  await gate(job, 'echo');
  progress.stage = 'echo';
  const echo = await phase(
    echoClients.map((c, i) => ({
      calls: requests[i]!.map((req) => () => tracked(() => echoOnce(c, req))),
    })),
    job.phaseBudgetMs,
  );
  return echo.result;
}

function echoOnce(client: EchoClient, req: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.echo(req, new grpc.Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (e, res) =>
      e || res === undefined ? reject(e ?? new Error('no answer')) : resolve(res),
    ),
  );
}

if (parentPort !== null) {
  const port = parentPort;
  port.on('message', (m: unknown) => {
    if (m === 'probe') port.postMessage({ probe: probe() });
    else if (m !== null && typeof m === 'object' && 'go' in m) gates.get(String(m.go))?.();
  });
  // Listening must not keep the worker alive: one whose loop drains with a call unsettled still exits, and
  // runClients reports that as such.
  port.unref();
  run(workerData as ClientsJob).then(
    (result) => port.postMessage({ ok: true, result }),
    (e: unknown) => port.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
}
