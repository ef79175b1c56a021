/**
 * The .proto files as a runtime package definition, for server reflection (grpcurl, Postman, grpc_cli).
 * Loaded from proto/ at the repository root, which is two levels above both src/server and dist/server.
 */
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

export const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');

export const LANYARD_PROTO_FILES = [
  'lanyard/v1/types.proto',
  'lanyard/v1/registration.proto',
  'lanyard/v1/attestation.proto',
  'lanyard/v1/bundle.proto',
  'lanyard/v1/admin.proto',
  'lanyard/v1/session.proto',
  'lanyard/v1/audit.proto',
];

export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

let cached: protoLoader.PackageDefinition | undefined;

export function reflectionPackageDefinition(): protoLoader.PackageDefinition {
  cached ??= protoLoader.loadSync([...LANYARD_PROTO_FILES, healthProtoPath], {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
  });
  return cached;
}
