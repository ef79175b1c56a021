/**
 * One-shot calls to the SPIFFE Workload API, as go-spiffe's workloadapi.FetchJWTSVID(s), FetchX509Bundles and
 * FetchJWTBundles: open, take the first answer, close. The X.509-SVID with rotation is WorkloadApiX509Source.
 * The socket comes from `socketPath`, else SPIFFE_ENDPOINT_SOCKET.
 */
import * as grpc from '@grpc/grpc-js';
import { parseSpiffeBundle, X509Bundle } from '../bundle';
import {
  AgentNotReadyError,
  InternalError,
  InvalidArgumentError,
  type LanyardError,
  NotEntitledError,
  SourceNotReadyError,
} from '../errors';
import { errorFromStatus } from '../internal/grpc-status-map';
import { SpiffeWorkloadAPIClient } from '../gen/spiffe/workload/workload';
import { SpiffeId, TrustDomain } from '../spiffe';
import { WORKLOAD_API_HEADER } from './workload-api-source';
import { resolveWorkloadEndpoint } from './workload-endpoint';
import { certificatesFromConcatenatedDer } from '../svid/encoding';

export interface WorkloadApiCallOptions {
  /** Socket path or `unix:///path`; default SPIFFE_ENDPOINT_SOCKET. */
  socketPath?: string;
  /** Deadline of the call; default 30 s. */
  timeoutMs?: number;
}

export interface FetchedJwtSvid {
  readonly id: SpiffeId;
  /** The JWS compact serialisation, to send as a bearer token. */
  readonly token: string;
  readonly hint: string;
  /** The token's `exp` and `aud`, read (not verified: the token is the caller's own). */
  readonly expiresAt?: Date;
  readonly audience: readonly string[];
}

/**
 * JWT-SVIDs for `audience`: every SVID the caller is entitled to, or only `spiffeId`'s. The standard's default
 * is the first one (go-spiffe's FetchJWTSVID).
 * @throws the LanyardError of the refusal (NotEntitledError, AgentNotReadyError, ...; the gRPC ServiceError as its cause); ConfigError for a bad socket address.
 */
export async function fetchJwtSvids(
  options: WorkloadApiCallOptions & { audience: readonly string[]; spiffeId?: string },
): Promise<FetchedJwtSvid[]> {
  if (options.audience.length === 0 || options.audience.some((a) => a === '')) {
    throw new InvalidArgumentError('a JWT-SVID needs at least one audience');
  }
  if (options.spiffeId !== undefined) SpiffeId.parse(options.spiffeId);
  const res = await withClient(
    options,
    (client, md, deadline, socketPath) =>
      new Promise<{ svids: { spiffeId: string; svid: string; hint: string }[] }>((resolve, reject) => {
        client.fetchJwtsvid(
          { audience: [...options.audience], spiffeId: options.spiffeId ?? '' },
          md,
          { deadline },
          (err, r) => (err ? reject(toWorkloadApiError(err, socketPath)) : resolve(r)),
        );
      }),
  );
  if (res.svids.length === 0) {
    throw new NotEntitledError('the Workload API sent no JWT-SVID');
  }
  return res.svids.map((s) =>
    Object.freeze({ id: SpiffeId.parse(s.spiffeId), token: s.svid, hint: s.hint, ...claims(s.svid) }),
  );
}

/** The X.509 bundles the Workload API gives the caller, its own trust domain's and federated ones. */
export async function fetchX509Bundles(options: WorkloadApiCallOptions = {}): Promise<X509Bundle[]> {
  const res = await firstMessage(options, (client, md, deadline) =>
    client.fetchX509Bundles({}, md, { deadline }),
  );
  return Object.entries(res.bundles).map(([td, der]) => {
    const trustDomain = TrustDomain.parse(td);
    return X509Bundle.fromDer(trustDomain, certificatesFromConcatenatedDer(der));
  });
}

/** The JWT bundles (JWT authorities by key ID) the Workload API gives the caller. */
export async function fetchJwtBundles(options: WorkloadApiCallOptions = {}): Promise<X509Bundle[]> {
  const res = await firstMessage(options, (client, md, deadline) =>
    client.fetchJwtBundles({}, md, { deadline }),
  );
  return Object.entries(res.bundles).map(([td, json]) => parseSpiffeBundle(TrustDomain.parse(td), json));
}

type Call<T> = (
  client: SpiffeWorkloadAPIClient,
  md: grpc.Metadata,
  deadline: number,
  socketPath: string,
) => Promise<T>;

async function withClient<T>(options: WorkloadApiCallOptions, call: Call<T>): Promise<T> {
  const socketPath = resolveWorkloadEndpoint(options.socketPath);
  const client = new SpiffeWorkloadAPIClient(`unix://${socketPath}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set(WORKLOAD_API_HEADER, 'true');
  try {
    return await call(client, md, Date.now() + (options.timeoutMs ?? 30_000), socketPath);
  } finally {
    client.close();
  }
}

/** The first message of a streaming call, then the stream is cancelled. */
function firstMessage<T>(
  options: WorkloadApiCallOptions,
  open: (
    client: SpiffeWorkloadAPIClient,
    md: grpc.Metadata,
    deadline: number,
  ) => grpc.ClientReadableStream<T>,
): Promise<T> {
  return withClient(
    options,
    (client, md, deadline, socketPath) =>
      new Promise<T>((resolve, reject) => {
        const stream = open(client, md, deadline);
        let done = false;
        stream.on('data', (m: T) => {
          if (done) return;
          done = true;
          resolve(m);
          stream.cancel();
        });
        stream.on('error', (e: grpc.ServiceError) => {
          if (done) return;
          done = true;
          reject(toWorkloadApiError(e, socketPath));
        });
        stream.on('end', () => {
          if (done) return;
          done = true;
          reject(new AgentNotReadyError('the Workload API ended the stream without an answer'));
        });
      }),
  );
}

/**
 * The agent's refusal as the Lanyard error it sent (its code in the trailing metadata); for an agent that sends
 * none (SPIRE, or one that was not reached), the closest code for the gRPC status. The ServiceError is the cause.
 */
function toWorkloadApiError(e: grpc.ServiceError, socketPath: string): LanyardError {
  const cause = { cause: e };
  const remote = errorFromStatus(e);
  if (remote !== undefined) return remote;
  switch (e.code) {
    case grpc.status.UNAVAILABLE:
      return new AgentNotReadyError(`cannot reach the Workload API at ${socketPath}: ${e.details}`, cause);
    case grpc.status.DEADLINE_EXCEEDED:
      return new SourceNotReadyError(`no answer from the Workload API at ${socketPath} in time`, cause);
    case grpc.status.PERMISSION_DENIED:
      return new NotEntitledError(e.details, cause);
    case grpc.status.INVALID_ARGUMENT:
      return new InvalidArgumentError(e.details, cause);
    default:
      return new InternalError(`Workload API: ${grpc.status[e.code] ?? e.code}: ${e.details}`, cause);
  }
}

/** `exp` and `aud` of a JWS compact token, when its payload reads as JSON; nothing is verified. */
function claims(token: string): { expiresAt?: Date; audience: string[] } {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      exp?: unknown;
      aud?: unknown;
    };
    const aud =
      typeof payload.aud === 'string' ? [payload.aud] : Array.isArray(payload.aud) ? payload.aud : [];
    return {
      audience: aud.filter((a): a is string => typeof a === 'string'),
      ...(typeof payload.exp === 'number' ? { expiresAt: new Date(payload.exp * 1000) } : {}),
    };
  } catch {
    return { audience: [] };
  }
}
