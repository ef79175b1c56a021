/**
 * A grpc.health.v1 Check over a Unix socket, for `lanyard server healthcheck` and `lanyard agent healthcheck`
 * (SPIRE's `healthcheck` commands): plaintext on a local socket, so a container probe needs no TLS material.
 */
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import { service as healthService } from 'grpc-health-check';
import { CliError } from './cli-error';
import { EXIT_REJECTED } from './exit-codes';

export type HealthStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN' | 'UNKNOWN';

type HealthClient = grpc.Client & {
  Check(
    req: { service: string },
    md: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    cb: (err: grpc.ServiceError | null, res: { status: HealthStatus }) => void,
  ): void;
};

const Health = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, 'Health');

/**
 * The health of `service` ('' is the whole process) at the Unix socket `socketPath`.
 * @throws CliError (exit 1) when nothing answers there: no socket, nothing listening, no answer in time.
 */
export async function checkHealth(
  socketPath: string,
  options: { service?: string; timeoutMs: number; what: string },
): Promise<HealthStatus> {
  let isSocket = false;
  try {
    isSocket = fs.statSync(socketPath).isSocket();
  } catch {
    throw new CliError(`${options.what} is not running: no socket at ${socketPath}`, EXIT_REJECTED);
  }
  if (!isSocket) throw new CliError(`${socketPath} is not a socket`, EXIT_REJECTED);
  const client = new Health(
    `unix://${socketPath}`,
    grpc.credentials.createInsecure(),
  ) as unknown as HealthClient;
  try {
    return await new Promise<HealthStatus>((resolve, reject) => {
      client.Check(
        { service: options.service ?? '' },
        new grpc.Metadata(),
        { deadline: Date.now() + options.timeoutMs },
        (err, res) => (err ? reject(err) : resolve(res.status)),
      );
    });
  } catch (e) {
    const se = e as grpc.ServiceError;
    if (se.code === grpc.status.NOT_FOUND) return 'SERVICE_UNKNOWN';
    const why =
      se.code === grpc.status.DEADLINE_EXCEEDED
        ? `no answer in ${Math.round(options.timeoutMs / 1000)}s`
        : se.code === grpc.status.UNAVAILABLE
          ? `nothing answers (${se.details})`
          : `${grpc.status[se.code] ?? se.code}: ${se.details}`;
    throw new CliError(`${options.what} at ${socketPath} is not healthy: ${why}`, EXIT_REJECTED);
  } finally {
    client.close();
  }
}
