/**
 * An Envoy SDS v3 client built only from Envoy's published .proto files (vendored under proto/envoy, see
 * proto/THIRD_PARTY.md), loaded at run time by @grpc/proto-loader and protobufjs: it shares no generated code
 * with the agent, so a wire incompatibility in Lanyard's ts-proto output would show here. No Debian package
 * ships Envoy, so this stands in for it.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { REPO_ROOT } from './paths';

const PROTO_DIR = path.join(REPO_ROOT, 'proto');
export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

/** The JSON shape proto-loader gives (camelCase, oneofs named, bytes as Buffer). */
export interface WireDiscoveryRequest {
  versionInfo?: string;
  node?: { id: string; cluster?: string };
  resourceNames?: string[];
  typeUrl?: string;
  responseNonce?: string;
  errorDetail?: { code: number; message: string };
}
export interface WireDiscoveryResponse {
  versionInfo: string;
  /** protobufjs keeps Any's field names as in the proto. */
  resources: WireAny[];
  typeUrl: string;
  nonce: string;
}
export interface WireAny {
  type_url: string;
  value: Buffer;
}
type DataSource = { inlineBytes?: Buffer; specifier?: string };
export interface DecodedSecret {
  name: string;
  tlsCertificate?: { certificateChain: DataSource; privateKey: DataSource };
  validationContext?: {
    trustedCa?: DataSource;
    customValidatorConfig?: { name: string; typedConfig: WireAny };
  };
}
export interface DecodedSpiffeValidator {
  trustDomains: { name: string; trustBundle: DataSource }[];
}

const loaderOptions = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };

interface SdsClient extends grpc.Client {
  streamSecrets(
    metadata?: grpc.Metadata,
  ): grpc.ClientDuplexStream<WireDiscoveryRequest, WireDiscoveryResponse>;
  deltaSecrets(metadata?: grpc.Metadata): grpc.ClientDuplexStream<unknown, unknown>;
  fetchSecrets(
    req: WireDiscoveryRequest,
    cb: (e: grpc.ServiceError | null, r: WireDiscoveryResponse) => void,
  ): grpc.ClientUnaryCall;
}

let cached: { Client: grpc.ServiceClientConstructor; root: protobuf.Root } | undefined;

function load(): { Client: grpc.ServiceClientConstructor; root: protobuf.Root } {
  if (cached !== undefined) return cached;
  const def = protoLoader.loadSync('envoy/service/secret/v3/sds.proto', {
    ...loaderOptions,
    includeDirs: [PROTO_DIR],
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    envoy: { service: { secret: { v3: { SecretDiscoveryService: grpc.ServiceClientConstructor } } } };
  };
  // descriptor.proto (imported by the validation annotations) ships with protobufjs, not as a common type.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const descriptor = require('protobufjs/google/protobuf/descriptor.json') as {
    nested: { google: { nested: { protobuf: { nested: protobuf.INamespace['nested'] } } } };
  };
  protobuf.common('descriptor', descriptor.nested.google.nested.protobuf.nested!);
  const root = new protobuf.Root();
  const fallback = root.resolvePath.bind(root);
  root.resolvePath = (origin, target) => {
    const local = path.join(PROTO_DIR, target);
    return fs.existsSync(local) ? local : fallback(origin, target);
  };
  root.loadSync([
    'envoy/extensions/transport_sockets/tls/v3/secret.proto',
    'envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config.proto',
  ]);
  root.resolveAll();
  cached = { Client: pkg.envoy.service.secret.v3.SecretDiscoveryService, root };
  return cached;
}

export function sdsClient(socketPath: string): SdsClient {
  const { Client } = load();
  return new Client(`unix://${socketPath}`, grpc.credentials.createInsecure()) as unknown as SdsClient;
}

function decode<T>(typeName: string, value: Buffer): T {
  const type = load().root.lookupType(typeName);
  return type.toObject(type.decode(value), { bytes: Buffer, defaults: false, oneofs: true }) as T;
}

/** Decodes an Any of the response into the Secret it holds (refusing any other type). */
export function decodeSecret(any: WireAny): DecodedSecret {
  if (any.type_url !== SECRET_TYPE_URL) throw new Error(`not a Secret: ${any.type_url}`);
  return decode('envoy.extensions.transport_sockets.tls.v3.Secret', any.value);
}

export function decodeSpiffeValidator(any: WireAny): DecodedSpiffeValidator {
  const want = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig';
  if (any.type_url !== want) throw new Error(`not a SPIFFECertValidatorConfig: ${any.type_url}`);
  return decode('envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig', any.value);
}

/** Reads DiscoveryResponses from a StreamSecrets call one at a time; the stream's end status as an error. */
export class SdsStream {
  private readonly queue: WireDiscoveryResponse[] = [];
  private waiters: ((r: WireDiscoveryResponse | Error) => void)[] = [];
  private error: Error | undefined;
  readonly call: grpc.ClientDuplexStream<WireDiscoveryRequest, WireDiscoveryResponse>;

  constructor(client: SdsClient) {
    this.call = client.streamSecrets();
    this.call.on('data', (r: WireDiscoveryResponse) => {
      const w = this.waiters.shift();
      if (w) w(r);
      else this.queue.push(r);
    });
    this.call.on('error', (e: Error) => {
      this.error = e;
      for (const w of this.waiters.splice(0)) w(e);
    });
  }

  send(req: WireDiscoveryRequest): void {
    this.call.write({ typeUrl: SECRET_TYPE_URL, node: { id: 'envoy-test', cluster: 'test' }, ...req });
  }

  /** An ACK of `r`, or with `error` a NACK, for the same names. */
  reply(r: WireDiscoveryResponse, names: string[], error?: string): void {
    this.send({
      versionInfo: r.versionInfo,
      responseNonce: r.nonce,
      resourceNames: names,
      ...(error !== undefined && { errorDetail: { code: 3, message: error } }),
    });
  }

  next(timeoutMs = 15_000): Promise<WireDiscoveryResponse> {
    const r = this.queue.shift();
    if (r) return Promise.resolve(r);
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no DiscoveryResponse in time')), timeoutMs);
      this.waiters.push((v) => {
        clearTimeout(t);
        if (v instanceof Error) reject(v);
        else resolve(v);
      });
    });
  }

  /** How many responses arrived and were not read yet. */
  get pending(): number {
    return this.queue.length;
  }

  cancel(): void {
    this.call.cancel();
  }
}
