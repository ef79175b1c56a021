/**
 * The .proto files as a runtime package definition, for server reflection (grpcurl, Postman, grpc_cli).
 * Loaded from proto/ at the repository root, which is two levels above both src/server and dist/server.
 *
 * Every file under proto/lanyard/v1 is loaded, not a hand-kept list: a service added later is reflected
 * without anyone remembering to list its file. Each listener reflects exactly the services it serves, and
 * refuses to start with one the descriptors do not describe (see reflectedServiceNames).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

export const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');

const LANYARD_PROTO_DIR = 'lanyard/v1';

/** Every Lanyard .proto file, relative to PROTO_ROOT, sorted. */
export function lanyardProtoFiles(): string[] {
  return fs
    .readdirSync(path.join(PROTO_ROOT, LANYARD_PROTO_DIR))
    .filter((f) => f.endsWith('.proto'))
    .sort()
    .map((f) => `${LANYARD_PROTO_DIR}/${f}`);
}

export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

let cached: protoLoader.PackageDefinition | undefined;

export function reflectionPackageDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync([...lanyardProtoFiles(), healthProtoPath], {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
  });
  return cached;
}

/** Whether the descriptors define `name` as a service (messages and enums carry a `format`, services do not). */
export function describesService(name: string): boolean {
  const entry = reflectionPackageDefinition()[name];
  return entry !== undefined && !('format' in entry);
}

/**
 * What a listener serving `served` reflects: those services and health.
 * @throws Error naming a served service the descriptors lack: reflection would silently hide it.
 */
export function reflectedServiceNames(served: readonly string[]): string[] {
  const missing = served.filter((n) => !describesService(n));
  if (missing.length > 0) {
    throw new Error(
      `no .proto under ${path.join(PROTO_ROOT, LANYARD_PROTO_DIR)} defines ${missing.join(', ')}: reflection could not describe it`,
    );
  }
  return [...served, HEALTH_SERVICE_NAME];
}
