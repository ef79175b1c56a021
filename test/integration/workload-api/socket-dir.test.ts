/**
 * The Workload API socket's directory: one the agent creates is 0755 (workloads of other users must reach
 * the socket; the admin socket's stays 0700), and one someone else could tamper with is refused.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { WorkloadEndpoint } from '../../../src/agent/workload-api/endpoint';
import { prepareWorkloadSocketDir } from '../../../src/agent/workload-api/socket-dir';
import { clearStaleSocket } from '../../../src/internal/unix-socket';
import { createLogger } from '../../../src/internal/logging';
import { tempDir } from '../../support/agent';

const NOBODY = 65534;
const asRoot = process.getuid!() === 0;
const mode = (p: string): number => fs.statSync(p).mode & 0o7777;

describe('node agent: the Workload API socket directory', () => {
  it('creates missing directories 0755 whatever the umask; the admin socket directory stays 0700', async () => {
    const base = tempDir();
    const previous = process.umask(0o077);
    try {
      prepareWorkloadSocketDir(path.join(base, 'run', 'lanyard', 'agent.sock'));
      await clearStaleSocket(path.join(base, 'admin', 'admin.sock'));
    } finally {
      process.umask(previous);
    }
    assert.equal(mode(path.join(base, 'run')), 0o755);
    assert.equal(mode(path.join(base, 'run', 'lanyard')), 0o755);
    assert.equal(mode(path.join(base, 'admin')), 0o700);
  });

  it('a workload of another user can connect to the socket in the directory the agent made', async function () {
    if (!asRoot) this.skip();
    const socketPath = path.join(tempDir(), 'run', 'agent.sock');
    const logger = createLogger({
      level: 'silent',
      destination: new Writable({ write: (_c, _e, cb) => cb() }),
    });
    const previous = process.umask(0o077);
    let endpoint: WorkloadEndpoint;
    try {
      endpoint = await WorkloadEndpoint.listen({ socketPath, services: () => [], logger });
    } finally {
      process.umask(previous);
    }
    try {
      const r = spawnSync(
        process.execPath,
        [
          '-e',
          `require('net').connect(${JSON.stringify(socketPath)}).on('connect', () => process.exit(0))` +
            `.on('error', (e) => { console.error(e.code); process.exit(1); })`,
        ],
        { uid: NOBODY, gid: NOBODY, encoding: 'utf8', timeout: 10_000 },
      );
      assert.equal(r.status, 0, `nobody could not connect: ${r.stderr}`);
    } finally {
      await endpoint.close();
    }
  });

  it('refuses a directory writable by others without the sticky bit; accepts one with it', () => {
    const open = path.join(tempDir(), 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    assert.throws(() => prepareWorkloadSocketDir(path.join(open, 'agent.sock')), {
      code: 'ERR_IO',
      message: /without the sticky bit/,
    });
    fs.chmodSync(open, 0o775);
    assert.throws(() => prepareWorkloadSocketDir(path.join(open, 'agent.sock')), { code: 'ERR_IO' });
    fs.chmodSync(open, 0o1777);
    prepareWorkloadSocketDir(path.join(open, 'agent.sock'));
    assert.equal(mode(open), 0o1777);
  });

  it("refuses a directory owned by another user than root and the agent's", function () {
    if (!asRoot) this.skip();
    const theirs = path.join(tempDir(), 'theirs');
    fs.mkdirSync(theirs, { mode: 0o755 });
    fs.chownSync(theirs, NOBODY, NOBODY);
    assert.throws(() => prepareWorkloadSocketDir(path.join(theirs, 'agent.sock')), {
      code: 'ERR_IO',
      message: /owned by uid 65534/,
    });
  });

  it('refuses a path whose directory is a file', () => {
    const file = path.join(tempDir(), 'file');
    fs.writeFileSync(file, '');
    assert.throws(() => prepareWorkloadSocketDir(path.join(file, 'agent.sock')), { code: 'ERR_IO' });
  });
});
