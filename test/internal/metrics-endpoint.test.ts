import * as assert from 'node:assert/strict';
import { Counter, Registry } from 'prom-client';
import { createLogger } from '../../src/internal/logging';
import { isLoopbackHost, loopbackProblem, startMetricsEndpoint } from '../../src/internal/metrics-endpoint';

describe('metrics endpoint', () => {
  it('counts only loopback addresses as loopback', () => {
    for (const host of ['127.0.0.1', '127.8.9.10', '::1', 'localhost', '::ffff:127.0.0.1']) {
      assert.equal(isLoopbackHost(host), true, host);
    }
    for (const host of [
      '0.0.0.0',
      '::',
      '10.0.0.1',
      '192.168.1.5',
      '::ffff:10.0.0.1',
      'example.com',
      '128.0.0.1',
    ]) {
      assert.equal(isLoopbackHost(host), false, host);
    }
  });

  it('refuses a non-loopback bind unless it is allowed', () => {
    assert.match(loopbackProblem('0.0.0.0', false) ?? '', /not a loopback address/);
    assert.equal(loopbackProblem('0.0.0.0', true), undefined);
    assert.equal(loopbackProblem('127.0.0.1', false), undefined);
  });

  it('serves its own registry at /metrics only, to GET and HEAD', async () => {
    const registry = new Registry();
    new Counter({ name: 'probe_total', help: 'a probe', registers: [registry] }).inc(2);
    const endpoint = await startMetricsEndpoint({
      listen: { host: '127.0.0.1', port: 0 },
      registry,
      logger: createLogger({ level: 'silent' }),
    });
    try {
      const base = `http://${endpoint.address}`;
      const res = await fetch(`${base}/metrics`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), registry.contentType);
      assert.match(await res.text(), /^probe_total 2$/m);
      assert.equal((await fetch(`${base}/`)).status, 404);
      assert.equal((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
      assert.equal((await fetch(`${base}/metrics`, { method: 'HEAD' })).status, 200);
    } finally {
      await endpoint.close();
    }
  });
});
