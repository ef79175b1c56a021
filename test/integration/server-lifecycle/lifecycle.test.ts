import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { service as healthService } from 'grpc-health-check';
import { ErrorCode, isLanyardError } from '../../../src/errors';
import { AdminClient } from '../../../src/server/admin-client';
import { openDefaultStore } from '../../../src/server/run';
import { hashJoinToken } from '../../../src/internal/join-token-secret';
import type { Store, StoreOps } from '../../../src/store/store';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { rejectsWithStatus } from '../../support/grpc-refusal';

const TD = 'spiffe://lanyard.local';
const ENTRY = { spiffeId: `${TD}/agents/a`, selectors: [{ type: 'unix', value: 'uid:1000' }] };

type HealthWatch = (req: { service: string }) => grpc.ClientReadableStream<{ status: string }>;
type HealthCheck = (
  req: { service: string },
  cb: (err: grpc.ServiceError | null, res: { status: string }) => void,
) => void;

function healthClient(socketPath: string): grpc.Client & { Check: HealthCheck; Watch: HealthWatch } {
  const Ctor = grpc.makeGenericClientConstructor(healthService as grpc.ServiceDefinition, 'Health');
  return new Ctor(`unix://${socketPath}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Check: HealthCheck;
    Watch: HealthWatch;
  };
}

function check(
  client: grpc.Client & { Check: HealthCheck; Watch: HealthWatch },
  service: string,
): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))),
  );
}

/** Lists services through the server reflection protocol (v1), as grpcurl does. */
async function reflectedServices(socketPath: string): Promise<string[]> {
  const protoDir = path.join(path.dirname(require.resolve('@grpc/reflection')), '..', 'proto');
  const def = protoLoader.loadSync('grpc/reflection/v1/reflection.proto', {
    includeDirs: [protoDir],
    keepCase: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(
    `unix://${socketPath}`,
    grpc.credentials.createInsecure(),
  );
  try {
    return await new Promise((resolve, reject) => {
      const call = (
        client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<unknown, unknown> }
      ).ServerReflectionInfo();
      call.on('data', (res: { list_services_response?: { service: { name: string }[] } }) => {
        resolve((res.list_services_response?.service ?? []).map((s) => s.name).sort());
        call.end();
      });
      call.on('error', reject);
      call.write({ list_services: '' });
    });
  } finally {
    client.close();
  }
}

/**
 * A store whose next transaction, once armed, waits at a gate before it takes the store's lock, to hold a
 * call in flight (CreateEntry runs in a transaction, with its audit record). Armed by the test once the
 * server is up, so start-up's own transactions pass.
 */
function gatedStore(inner: Store): { store: Store; entered: Promise<void>; open(): void; arm(): void } {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let entered!: () => void;
  const enteredP = new Promise<void>((r) => (entered = r));
  let armed = false;
  const store = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'transaction' && armed) {
        return async <R>(fn: (tx: StoreOps) => Promise<R>) => {
          entered();
          await gate;
          return target.transaction(fn);
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { store, entered: enteredP, open, arm: () => (armed = true) };
}

describe('server lifecycle', () => {
  const dirs: string[] = [];
  const servers: TestServer[] = [];
  const start = async (...args: Parameters<typeof startTestServer>): Promise<TestServer> => {
    const s = await startTestServer(...args);
    servers.push(s);
    dirs.push(s.dir);
    return s;
  };
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.stop();
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('answers health checks: SERVING overall and per service, NOT_FOUND for unknown services', async () => {
    const t = await start();
    const h = healthClient(t.config.adminSocketPath);
    try {
      assert.equal(await check(h, ''), 'SERVING');
      assert.equal(await check(h, 'lanyard.v1.RegistrationService'), 'SERVING');
      await assert.rejects(
        check(h, 'no.such.Service'),
        (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
      );
    } finally {
      h.close();
    }
  });

  it('tells health watchers NOT_SERVING on close, then ends their stream instead of waiting out the grace period', async () => {
    const t = await start({ config: { shutdownGraceSeconds: 30 } });
    const h = healthClient(t.config.adminSocketPath);
    try {
      const seen: string[] = [];
      const stream = h.Watch({ service: '' });
      const ended = new Promise<void>((resolve) => {
        stream.on('data', (m: { status: string }) => seen.push(m.status));
        stream.on('end', resolve);
        stream.on('error', () => resolve());
      });
      while (seen.length === 0) await new Promise((r) => setTimeout(r, 10));
      const started = Date.now();
      await t.running.close();
      await ended;
      // Semantics, not speed: far below the 30 s grace period even on a loaded machine.
      assert.ok(Date.now() - started < 20_000, 'closed without waiting for the grace period');
      assert.deepEqual(seen, ['SERVING', 'NOT_SERVING']);
    } finally {
      h.close();
    }
  });

  it('serves reflection listing the registration and health services', async () => {
    const t = await start();
    const names = await reflectedServices(t.config.adminSocketPath);
    assert.ok(names.includes('lanyard.v1.RegistrationService'), names.join());
    assert.ok(names.includes('grpc.health.v1.Health'), names.join());
    assert.ok(!names.includes('lanyard.v1.AttestationService'), 'only what this listener serves');
  });

  it('guards the admin socket with file permissions: data dir 0700, socket 0600', async () => {
    const dir = tempDataDir();
    fs.chmodSync(dir, 0o755);
    const t = await start({ dir });
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    const st = fs.lstatSync(t.config.adminSocketPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(t.logs.some((l) => l.includes('tightened to 0700')));
  });

  it('graceful close drains an in-flight call, refuses new ones, then closes the store', async () => {
    const dir = tempDataDir();
    let gated!: ReturnType<typeof gatedStore>;
    const t = await start({
      dir,
      start: {
        openStore: async (config) => {
          gated = gatedStore(await openDefaultStore(config));
          return gated.store;
        },
      },
    });
    gated.arm();
    const inFlight = t.client.createEntry({ entry: ENTRY });
    await gated.entered;

    let closed = false;
    const closing = t.running.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(closed, false, 'close waits for the in-flight call');

    const late = new AdminClient(t.config.adminSocketPath, { timeoutMs: 2000 });
    try {
      await rejectsWithStatus(late.listEntries({}), grpc.status.UNAVAILABLE);
    } finally {
      late.close();
    }

    gated.open();
    const res = await inFlight;
    assert.equal(res.entry?.spiffeId, ENTRY.spiffeId);
    await closing;
    assert.equal(t.running.server.state, 'closed');
    assert.equal(fs.existsSync(t.config.adminSocketPath), false, 'socket removed');
    await assert.rejects(
      t.running.store.listEntries({}, { pageSize: 1 }),
      (e: unknown) => isLanyardError(e) && e.code === ErrorCode.STORE_CLOSED,
    );

    // What the drained call wrote is durable.
    const reopened = await openDefaultStore(t.config);
    try {
      assert.equal((await reopened.listEntries({}, { pageSize: 10 })).entries.length, 1);
    } finally {
      await reopened.close();
    }
  });

  it('cancels calls still running when the grace period ends', async () => {
    let gated!: ReturnType<typeof gatedStore>;
    const t = await start({
      config: { shutdownGraceSeconds: 1 },
      start: {
        openStore: async (config) => {
          gated = gatedStore(await openDefaultStore(config));
          return gated.store;
        },
      },
    });
    gated.arm();
    const inFlight = t.client.createEntry({ entry: ENTRY });
    await gated.entered;
    const started = Date.now();
    await t.running.close();
    const took = Date.now() - started;
    // It waited for the 1 s grace period, then cancelled instead of waiting for the gated call (which never
    // ends on its own); the upper bound is only there to name that failure before mocha's timeout does.
    assert.ok(took >= 900 && took < 20_000, `close took ${took} ms`);
    await assert.rejects(inFlight);
    gated.open();
  });

  it('replaces a stale socket left by a dead server, and refuses to start beside a live one', async () => {
    const dir = tempDataDir();
    const socketPath = path.join(dir, 'admin.sock');
    // A process that binds the socket and exits without removing it, as a crashed server would.
    execFileSync('python3', [
      '-c',
      `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(socketPath)})`,
    ]);
    assert.ok(fs.lstatSync(socketPath).isSocket());
    const t = await start({ dir });
    assert.equal((await t.client.listEntries({})).entries.length, 0);

    await assert.rejects(
      startTestServer({ dir }),
      (e: unknown) => e instanceof Error && e.message.includes('already listening'),
    );
    // The live server is unharmed.
    assert.equal((await t.client.listEntries({})).entries.length, 0);
  });

  it('keeps entries and spent join tokens across a restart on the same data dir', async () => {
    const first = await start();
    const { entry } = await first.client.createEntry({ entry: ENTRY });
    const token = await first.client.createJoinToken({ spiffeId: ENTRY.spiffeId });
    await first.running.store.consumeJoinToken(hashJoinToken(token.token), new Date());
    await first.stop();
    servers.splice(servers.indexOf(first), 1);

    const second = await start({ dir: first.dir });
    assert.deepEqual((await second.client.getEntry({ id: entry?.id ?? '' })).entry, entry);
    await assert.rejects(
      second.running.store.consumeJoinToken(hashJoinToken(token.token), new Date()),
      (e: unknown) => isLanyardError(e) && e.code === ErrorCode.TOKEN_SPENT,
    );
  });
});
