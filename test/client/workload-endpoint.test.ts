/** SPIFFE_ENDPOINT_SOCKET and Workload API addresses, parsed as go-spiffe parses unix: addresses. */
import assert from 'node:assert/strict';
import {
  parseWorkloadEndpoint,
  resolveWorkloadEndpoint,
  SPIFFE_ENDPOINT_SOCKET,
  workloadEndpointUri,
} from '../../src/client/workload-endpoint';
import { ConfigError } from '../../src/errors';

describe('Workload API addresses', () => {
  it('accepts unix:///path and unix:/path (as go-spiffe does), giving the absolute path', () => {
    assert.equal(parseWorkloadEndpoint('unix:///run/spire/agent.sock'), '/run/spire/agent.sock');
    assert.equal(parseWorkloadEndpoint('unix:/run/spire/agent.sock'), '/run/spire/agent.sock');
    assert.equal(parseWorkloadEndpoint('UNIX:///tmp/a.sock'), '/tmp/a.sock');
    assert.equal(parseWorkloadEndpoint('unix:///tmp/with%20space.sock'), '/tmp/with space.sock');
  });

  for (const [address, reason] of [
    ['tcp://127.0.0.1:8081', /scheme "tcp" is not supported, only unix/],
    ['http:///tmp/a.sock', /scheme "http" is not supported/],
    ['/run/agent.sock', /no URI scheme/],
    ['', /no URI scheme/],
    ['unix:agent.sock', /must be absolute/],
    ['unix://agent.sock', /host \("agent\.sock"\) is not allowed/],
    ['unix://localhost/run/agent.sock', /host \("localhost"\) is not allowed/],
    ['unix://john:doe@host/run/a.sock', /user info is not allowed/],
    ['unix://', /socket path is empty/],
    ['unix:///', /socket path is empty/],
    ['unix:///tmp/a.sock?x=1', /query is not allowed/],
    ['unix:///tmp/a.sock#frag', /fragment is not allowed/],
    ['unix:///tmp/%zz', /malformed percent-escape/],
    ['unix:///tmp/a%00b', /NUL byte/],
  ] as const) {
    it(`refuses ${JSON.stringify(address)} with ConfigError naming the reason`, () => {
      assert.throws(
        () => parseWorkloadEndpoint(address, SPIFFE_ENDPOINT_SOCKET),
        (e: unknown) =>
          e instanceof ConfigError &&
          e.code === 'ERR_INVALID_CONFIG' &&
          e.message.startsWith(`${SPIFFE_ENDPOINT_SOCKET} ${JSON.stringify(address)}: `) &&
          reason.test(e.message),
      );
    });
  }

  it('resolve: an explicit socket (path or unix: address) wins over the environment', () => {
    const env = { [SPIFFE_ENDPOINT_SOCKET]: 'unix:///from/env.sock' };
    assert.equal(resolveWorkloadEndpoint('/given.sock', env), '/given.sock');
    assert.equal(resolveWorkloadEndpoint('unix:///given.sock', env), '/given.sock');
    assert.equal(resolveWorkloadEndpoint(undefined, env), '/from/env.sock');
    assert.equal(resolveWorkloadEndpoint('', env), '/from/env.sock');
    // A relative path given directly is the caller's own, resolved against the working directory.
    assert.equal(resolveWorkloadEndpoint('rel.sock', env), `${process.cwd()}/rel.sock`);
  });

  it('resolve: neither given nor set (or set empty) is a ConfigError that says how to set it', () => {
    for (const env of [{}, { [SPIFFE_ENDPOINT_SOCKET]: '' }]) {
      assert.throws(() => resolveWorkloadEndpoint(undefined, env), {
        name: 'ConfigError',
        message: /set SPIFFE_ENDPOINT_SOCKET=unix:\/\/\//,
      });
    }
    assert.throws(() => resolveWorkloadEndpoint(undefined, { [SPIFFE_ENDPOINT_SOCKET]: 'unix:rel' }), {
      message: /^SPIFFE_ENDPOINT_SOCKET "unix:rel": the socket path must be absolute/,
    });
  });

  it('workloadEndpointUri writes an address that parses back to the same path', () => {
    for (const p of ['/tmp/agent.sock', '/tmp/a b/agent%1.sock', '/tmp/q?x#y.sock']) {
      assert.equal(parseWorkloadEndpoint(workloadEndpointUri(p)), p);
    }
  });
});
