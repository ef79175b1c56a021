/**
 * Failover between the servers of one database: which errors move a call to the next server (only "did not
 * answer"), which are returned at once (every refusal), stickiness, rounds, and names resolved through DNS.
 */
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ErrorCode, InvalidArgumentError } from '../../src/errors';
import { isFailoverError, ServerEndpoints } from '../../src/client/server-endpoints';
import { startDnsServer, type TestDnsServer } from '../support/dns-server';

/** What grpc-js rejects a call with. */
function grpcError(
  code: grpc.status,
  details = grpc.status[code],
): Error & { code: number; details: string } {
  return Object.assign(new Error(`${code} ${details}`), { code, details });
}

describe('ServerEndpoints', () => {
  it('refuses an address that is not host:port, [v6]:port or dns:[//server/]host:port', () => {
    for (const bad of [
      '',
      'no-port',
      'host:',
      'host:0',
      'host:65536',
      'host:80x',
      ':8081',
      '::1:8081',
      'dns://127.0.0.1:53',
      'a b:8081',
    ]) {
      assert.throws(
        () => new ServerEndpoints(bad),
        (e: unknown) => e instanceof InvalidArgumentError && e.code === ErrorCode.INVALID_ARGUMENT,
        bad,
      );
    }
    assert.throws(() => new ServerEndpoints([]), InvalidArgumentError);
  });

  it('takes IP literals as they are, IPv6 in brackets, duplicates once', async () => {
    const e = new ServerEndpoints(['127.0.0.1:8081', '[::1]:8082', 'dns:127.0.0.1:8081']);
    assert.deepEqual(await e.addresses(), ['127.0.0.1:8081', '[::1]:8082']);
    assert.equal(e.current(), '127.0.0.1:8081');
  });

  it('moves to the next server on UNAVAILABLE and DEADLINE_EXCEEDED, and stays there', async () => {
    for (const code of [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]) {
      const e = new ServerEndpoints(['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3']);
      const seen: string[] = [];
      const failedOver: string[] = [];
      const got = await e.call(
        async (a) => {
          seen.push(a);
          if (a === '127.0.0.1:1') throw grpcError(code);
          return a;
        },
        { onFailover: (a) => failedOver.push(a) },
      );
      assert.equal(got, '127.0.0.1:2');
      assert.deepEqual(failedOver, ['127.0.0.1:1']);
      assert.equal(e.current(), '127.0.0.1:2');
      // The next call starts where the last one succeeded: a dead first server is not tried at every call.
      seen.length = 0;
      await e.call(async (a) => a);
      assert.deepEqual(seen, []);
      assert.equal(await e.call(async (a) => a), '127.0.0.1:2');
    }
  });

  it('never offers a refused call to another server', async () => {
    const refusals = [
      grpc.status.PERMISSION_DENIED,
      grpc.status.INVALID_ARGUMENT,
      grpc.status.UNAUTHENTICATED,
      grpc.status.FAILED_PRECONDITION,
      grpc.status.NOT_FOUND,
      grpc.status.ALREADY_EXISTS,
      grpc.status.RESOURCE_EXHAUSTED,
      grpc.status.INTERNAL,
      grpc.status.CANCELLED,
    ];
    for (const code of refusals) {
      assert.equal(isFailoverError(grpcError(code)), false, grpc.status[code]);
      const e = new ServerEndpoints(['127.0.0.1:1', '127.0.0.1:2']);
      const seen: string[] = [];
      await assert.rejects(
        e.call(async (a) => {
          seen.push(a);
          throw grpcError(code);
        }),
        (err: { code: number }) => err.code === code,
      );
      assert.deepEqual(seen, ['127.0.0.1:1'], `${grpc.status[code]} was tried on another server`);
      assert.equal(e.current(), '127.0.0.1:1');
    }
    // An error that is not a gRPC status at all (a bug, a bad response) is not a reason to try elsewhere either.
    const e = new ServerEndpoints(['127.0.0.1:1', '127.0.0.1:2']);
    let calls = 0;
    await assert.rejects(
      e.call(async () => {
        calls++;
        throw new Error('the server answered without an SVID');
      }),
      /without an SVID/,
    );
    assert.equal(calls, 1);
  });

  it('rejects with the last error once every server failed, after the rounds asked for', async () => {
    const e = new ServerEndpoints(['127.0.0.1:1', '127.0.0.1:2']);
    const seen: string[] = [];
    await assert.rejects(
      e.call(
        async (a) => {
          seen.push(a);
          throw grpcError(grpc.status.UNAVAILABLE, `down ${a}`);
        },
        { rounds: 2, backoffMs: 1 },
      ),
      (err: { details: string }) => err.details === 'down 127.0.0.1:2',
    );
    assert.deepEqual(seen, ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:1', '127.0.0.1:2']);
  });

  it('moves on once when several calls find the same server down together', async () => {
    const e = new ServerEndpoints(['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3']);
    const results = await Promise.all(
      [0, 1, 2].map(() =>
        e.call(async (a) => {
          if (a === '127.0.0.1:1') throw grpcError(grpc.status.UNAVAILABLE);
          return a;
        }),
      ),
    );
    assert.deepEqual(results, ['127.0.0.1:2', '127.0.0.1:2', '127.0.0.1:2']);
    assert.equal(e.current(), '127.0.0.1:2');
  });

  describe('a name resolving to several servers', () => {
    let dns: TestDnsServer;
    before(async () => {
      dns = await startDnsServer({
        'servers.lanyard.test': ['127.0.0.1', '127.0.0.2', '::1'],
      });
    });
    after(() => dns.close());

    it('is every A and AAAA address of the name, each a server', async () => {
      const e = new ServerEndpoints(`dns://${dns.address}/servers.lanyard.test:8443`);
      const all = await e.addresses();
      assert.deepEqual(all.sort(), ['127.0.0.1:8443', '127.0.0.2:8443', '[::1]:8443']);
      assert.ok(all.includes(e.current()));
    });

    it('is resolved again after a round where every address failed', async () => {
      dns.set('moving.lanyard.test', ['127.0.0.1']);
      const e = new ServerEndpoints(`dns://${dns.address}/moving.lanyard.test:8443`);
      await assert.rejects(
        e.call(async () => {
          throw grpcError(grpc.status.UNAVAILABLE);
        }),
      );
      dns.set('moving.lanyard.test', ['127.0.0.3']);
      assert.equal(await e.call(async (a) => a), '127.0.0.3:8443');
    });

    it('fails a call as UNAVAILABLE when no name resolves, and uses the names that do', async () => {
      const none = new ServerEndpoints(`dns://${dns.address}/nowhere.lanyard.test:8443`);
      await assert.rejects(
        none.call(async (a) => a),
        (err: { code: number }) => err.code === grpc.status.UNAVAILABLE,
      );
      const some = new ServerEndpoints([
        `dns://${dns.address}/nowhere.lanyard.test:8443`,
        `dns://${dns.address}/servers.lanyard.test:8443`,
      ]);
      assert.equal((await some.addresses()).length, 3);
    });
  });
});
