/**
 * Server reflection as grpcurl uses it, on each listener: the services listed are exactly the ones the
 * listener serves (as its "listening" log line names them) plus health, and every one of them resolves by
 * symbol to descriptors from which a client can be built. A service without a .proto stops the start-up.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { BundleServiceService } from '../../../src/gen/lanyard/v1/bundle';
import { LanyardServer } from '../../../src/server/grpc-server';
import { createLogger } from '../../../src/internal/logging';
import { HEALTH_SERVICE_NAME, lanyardProtoFiles } from '../../../src/server/proto-descriptors';
import { startTestServer, type TestServer } from '../../support/test-server';
import { PUBLIC_CHANNEL_OPTIONS, publicCredentials } from '../../support/public-client';

interface ReflectionResponse {
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

/** One reflection stream (v1): each request written in turn, each answer read before the next. */
class Reflection {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<unknown, ReflectionResponse>;
  private readonly pending: { resolve: (r: ReflectionResponse) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | undefined;

  constructor(target: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions = {}) {
    const protoDir = path.join(path.dirname(require.resolve('@grpc/reflection')), '..', 'proto');
    const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
      includeDirs: [protoDir],
      keepCase: true,
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    this.client = new pkg.grpc.reflection.v1.ServerReflection(target, credentials, options);
    this.call = (
      this.client as unknown as {
        ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, ReflectionResponse>;
      }
    ).ServerReflectionInfo();
    this.call.on('data', (r: ReflectionResponse) => this.pending.shift()?.resolve(r));
    this.call.on('error', (e: Error) => {
      this.failure = e;
      for (const p of this.pending.splice(0)) p.reject(e);
    });
  }

  ask(request: object): Promise<ReflectionResponse> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.call.write(request);
    });
  }

  async listServices(): Promise<string[]> {
    const r = await this.ask({ list_services: '' });
    return (r.list_services_response?.service ?? []).map((s) => s.name).sort();
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}

/** The descriptors of a file_descriptor_response as a package definition, the way a reflection client builds one. */
function definitionOf(files: Buffer[]): protoLoader.PackageDefinition {
  // A FileDescriptorSet is `repeated FileDescriptorProto file = 1`: each file as a length-delimited field 1.
  const parts: Buffer[] = [];
  for (const f of files) {
    const len: number[] = [];
    let n = f.length;
    while (n > 0x7f) {
      len.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    len.push(n);
    parts.push(Buffer.from([0x0a, ...len]), f);
  }
  return protoLoader.loadFileDescriptorSetFromBuffer(Buffer.concat(parts), { keepCase: true });
}

describe('server reflection on every listener', function () {
  this.timeout(30_000);
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.stop();
    fs.rmSync(t.dir, { recursive: true, force: true });
  });

  /** The services a listener says it serves, from its "listening" log line. */
  function servedBy(listener: string): string[] {
    const line = t.logs
      .map((l) => JSON.parse(l) as { msg?: string; listener?: string; services?: string[] })
      .find((l) => l.msg === 'listening' && l.listener === listener);
    assert.ok(line?.services, `no listening line for ${listener}`);
    return line.services;
  }

  const listeners: [string, () => Reflection][] = [
    ['admin', () => new Reflection(`unix://${t.config.adminSocketPath}`, grpc.credentials.createInsecure())],
    [
      'public',
      () =>
        new Reflection(
          t.running.publicAddress,
          publicCredentials(t.running.ca.bundle().toPem(), t.config.trustDomain),
          PUBLIC_CHANNEL_OPTIONS,
        ),
    ],
  ];

  for (const [name, connect] of listeners) {
    it(`${name}: lists exactly the served services and health, and resolves each one by symbol`, async () => {
      const served = servedBy(name);
      assert.ok(served.length > 0);
      const r = connect();
      try {
        assert.deepEqual(await r.listServices(), [...served, HEALTH_SERVICE_NAME].sort());
        for (const service of [...served, HEALTH_SERVICE_NAME]) {
          const res = await r.ask({ file_containing_symbol: service });
          assert.equal(res.error_response, undefined, `${service}: ${res.error_response?.error_message}`);
          const files = res.file_descriptor_response?.file_descriptor_proto ?? [];
          assert.ok(files.length > 0, service);
          // What grpcurl does next: build the service from the descriptors and call its methods by name.
          const def = definitionOf(files.map((f) => Buffer.from(f)));
          const methods = def[service] as protoLoader.ServiceDefinition | undefined;
          assert.ok(methods !== undefined && !('format' in methods), `${service} is described`);
          assert.ok(Object.keys(methods).length > 0, `${service} has methods`);
          for (const m of Object.values(methods)) assert.ok(m.path.startsWith(`/${service}/`), m.path);
        }
        // Negative: a symbol that does not exist is NOT_FOUND, not an empty answer.
        const unknown = await r.ask({ file_containing_symbol: 'lanyard.v1.NoSuchService' });
        assert.equal(unknown.error_response?.error_code, grpc.status.NOT_FOUND);
      } finally {
        r.close();
      }
    });
  }

  it('the public listener reflects NodeService, the admin socket does not list what it does not serve', async () => {
    assert.ok(servedBy('public').includes('lanyard.v1.NodeService'));
    assert.ok(!servedBy('admin').includes('lanyard.v1.AttestationService'));
    const admin = listeners[0]![1]();
    try {
      assert.ok(!(await admin.listServices()).includes('lanyard.v1.AttestationService'));
    } finally {
      admin.close();
    }
  });

  it('loads every .proto under proto/lanyard/v1', () => {
    const dir = path.join(__dirname, '..', '..', '..', 'proto', 'lanyard', 'v1');
    assert.deepEqual(
      lanyardProtoFiles(),
      fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.proto'))
        .sort()
        .map((f) => `lanyard/v1/${f}`),
    );
    assert.ok(lanyardProtoFiles().includes('lanyard/v1/node.proto'));
  });

  it('refuses to start a listener serving a service that no .proto describes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-refl-'));
    const socket = path.join(dir, 's.sock');
    const server = new LanyardServer({
      listeners: [
        {
          name: 'test',
          address: `unix://${socket}`,
          credentials: grpc.ServerCredentials.createInsecure(),
          services: [
            {
              name: 'lanyard.v1.NoSuchService',
              definition: BundleServiceService as unknown as grpc.ServiceDefinition,
              implementation: {},
            },
          ],
        },
      ],
      logger: createLogger({ level: 'silent' }),
      maxMessageBytes: 1024 * 1024,
      shutdownGraceMs: 1000,
    });
    try {
      await assert.rejects(server.start(), /defines lanyard\.v1\.NoSuchService/);
      assert.equal(fs.existsSync(socket), false, 'nothing bound');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
