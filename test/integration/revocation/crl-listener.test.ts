/**
 * Where the CRL HTTP listener binds: off by default, loopback (127.0.0.1:8082) when merely enabled, any other
 * address only when configured, and a warning in the log whenever the bound address is not loopback.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { CONFIG_DEFAULTS, loadConfig } from '../../../src/server/config';
import { createLogger } from '../../../src/internal/logging';
import { isLoopbackAddress, warnIfNotLoopback } from '../../../src/server/revocation/crl-http';
import { startTestServer, tempDataDir } from '../../support/test-server';

describe('CRL HTTP listener address', function () {
  this.timeout(30_000);
  const dir = tempDataDir();
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const config = (yaml: string) => {
    const file = path.join(dir, `c-${Math.random()}.yaml`);
    fs.writeFileSync(file, yaml);
    return loadConfig({ cwd: dir, env: {}, configFile: file });
  };

  it('is off by default, loopback 127.0.0.1:8082 when enabled, and elsewhere only when configured', () => {
    assert.equal(loadConfig({ cwd: dir, env: {} }).crlListenAddress, undefined);
    assert.equal(config('crl: {}\n').crlListenAddress, undefined);
    assert.equal(CONFIG_DEFAULTS.crl_listen_address, '127.0.0.1:8082');
    assert.deepEqual(config('crl:\n  enabled: true\n').crlListenAddress, { host: '127.0.0.1', port: 8082 });
    assert.deepEqual(config('crl:\n  listen_address: 0.0.0.0:9090\n').crlListenAddress, {
      host: '0.0.0.0',
      port: 9090,
    });
    assert.equal(
      config('crl:\n  enabled: false\n  listen_address: 127.0.0.1:9090\n').crlListenAddress,
      undefined,
    );
    assert.throws(() => config('crl:\n  enabled: yes please\n'), /crl\.enabled/);
    assert.throws(() => config('crl:\n  listen_address: 8082\n'), /crl\.listen_address/);
  });

  it('tells loopback from everything else, wildcards included', () => {
    for (const ip of ['127.0.0.1', '127.9.8.7', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) {
      assert.equal(isLoopbackAddress(ip), true, ip);
    }
    for (const ip of [
      '0.0.0.0',
      '::',
      '10.0.0.1',
      '192.168.1.1',
      '::ffff:10.0.0.1',
      'fe80::1',
      '::2',
      'localhost',
    ]) {
      assert.equal(isLoopbackAddress(ip), false, ip);
    }
  });

  it('warns when the bound address is not loopback, and only then', () => {
    const lines: string[] = [];
    const logger = createLogger({
      level: 'debug',
      destination: new Writable({
        write(chunk: Buffer, _enc, cb) {
          lines.push(chunk.toString());
          cb();
        },
      }),
    });
    assert.equal(warnIfNotLoopback('127.0.0.1', '127.0.0.1:8082', logger), false);
    assert.equal(lines.length, 0);
    assert.equal(warnIfNotLoopback('0.0.0.0', '0.0.0.0:8082', logger), true);
    const line = JSON.parse(lines[0]!) as { level: number | string; msg: string; crlAddress: string };
    assert.match(line.msg, /non-loopback/);
    assert.equal(line.crlAddress, '0.0.0.0:8082');
  });

  it('a server bound to loopback serves the CRL and logs no warning', async () => {
    const s = await startTestServer({ config: { crlListenAddress: { host: '127.0.0.1', port: 0 } } });
    try {
      assert.match(s.running.crlAddress ?? '', /^127\.0\.0\.1:\d+$/);
      const res = await fetch(`http://${s.running.crlAddress}/crl/${s.config.trustDomain}.crl`);
      assert.equal(res.status, 200);
      assert.ok(s.logs.some((l) => l.includes('CRL served over HTTP')));
      assert.ok(!s.logs.some((l) => l.includes('non-loopback')));
    } finally {
      await s.stop();
    }
  });
});
