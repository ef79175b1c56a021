/** A grpc.health.v1 client for tests: Check, and Watch streams a test can wait on (never for a fixed time). */
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

export type HealthStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN' | 'UNKNOWN';

export type HealthClient = grpc.Client & {
  Check(
    req: { service: string },
    cb: (err: grpc.ServiceError | null, res: { status: HealthStatus }) => void,
  ): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: HealthStatus }>;
};

const Health = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, 'Health');

export function healthClient(
  target: string,
  creds: grpc.ChannelCredentials,
  options: grpc.ChannelOptions = {},
): HealthClient {
  return new Health(target, creds, options) as unknown as HealthClient;
}

export function checkHealth(client: HealthClient, service: string): Promise<HealthStatus> {
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))),
  );
}

export interface HealthWatch {
  /** Every status the stream delivered, in order. */
  seen: HealthStatus[];
  /** Resolves once the latest status seen is `s`. */
  until(s: HealthStatus): Promise<void>;
}

export function watchHealth(client: HealthClient, service: string): HealthWatch {
  const seen: HealthStatus[] = [];
  const waiters: (() => void)[] = [];
  const stream = client.Watch({ service });
  stream.on('data', (m: { status: HealthStatus }) => {
    seen.push(m.status);
    for (const w of waiters.splice(0)) w();
  });
  // The server ends Watch streams on close; the test has asserted what it saw by then.
  stream.on('error', () => undefined);
  return {
    seen,
    until: (s) =>
      new Promise((resolve) => {
        const test = (): void => (seen[seen.length - 1] === s ? resolve() : void waiters.push(test));
        test();
      }),
  };
}
