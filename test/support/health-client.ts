/** A grpc.health.v1 client for tests: Check, and Watch streams a test can wait on (never for a fixed time). */
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { PUBLIC_CHANNEL_OPTIONS } from './public-client';
import type { TestServer } from './test-server';

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

/**
 * The health clients a test opens, closed together (`closeAll()` in its afterEach): over the admin socket, and
 * over TLS without verifying the server, as a probe (grpc_health_probe -tls-no-verify) reaches the public
 * listener even when the server's certificate has expired.
 */
export class HealthClients {
  private readonly open: grpc.Client[] = [];

  admin(s: TestServer): HealthClient {
    return this.keep(healthClient(`unix://${s.config.adminSocketPath}`, grpc.credentials.createInsecure()));
  }

  probe(s: TestServer): HealthClient {
    return this.keep(
      healthClient(
        s.running.publicAddress,
        grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false }),
        PUBLIC_CHANNEL_OPTIONS,
      ),
    );
  }

  keep(c: HealthClient): HealthClient {
    this.open.push(c);
    return c;
  }

  closeAll(): void {
    for (const c of this.open.splice(0)) c.close();
  }
}
