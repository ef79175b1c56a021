/**
 * The unix workload attestor and SO_PEERCRED: the kernel's view of a real connection, the selectors of a real
 * process, and the fail-closed cases (a vanished process, a pid reused while its executable was hashed).
 */
import * as assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { peerCredentials } from '../../src/agent/workload-attestor/peercred';
import { attestUnixPeer } from '../../src/agent/workload-attestor/unix';
import { tempDir } from './helpers';

describe('node agent: unix workload attestation', () => {
  it('SO_PEERCRED names the connecting process (a child, not this one) as the kernel recorded it', async () => {
    const dir = tempDir();
    const sock = path.join(dir, 'p.sock');
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(sock, r));
    const child = spawn(process.execPath, [
      '-e',
      `require('net').connect(${JSON.stringify(sock)}); setTimeout(() => {}, 5000)`,
    ]);
    try {
      const socket = await new Promise<net.Socket>((r) => server.once('connection', r));
      const cred = peerCredentials(socket);
      assert.deepEqual(cred, { pid: child.pid, uid: process.getuid!(), gid: process.getgid!() });
      socket.destroy();
    } finally {
      child.kill();
      server.close();
    }
  });

  it('selectors of a live process: uid, gid, exe path and the SHA-256 of that executable', async () => {
    const a = await attestUnixPeer({ pid: process.pid, uid: 1234, gid: 5678 });
    const exe = fs.readlinkSync('/proc/self/exe');
    const digest = createHash('sha256').update(fs.readFileSync(exe)).digest('hex');
    assert.deepEqual(a.selectors, [
      { type: 'unix', value: 'uid:1234' },
      { type: 'unix', value: 'gid:5678' },
      { type: 'unix', value: `path:${exe}` },
      { type: 'unix', value: `sha256:${digest}` },
    ]);
  });

  it('fails closed for a process that is gone', async () => {
    const pid = Number(
      execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString(),
    );
    await assert.rejects(attestUnixPeer({ pid, uid: 0, gid: 0 }), {
      code: 'ERR_WORKLOAD_ATTESTATION_FAILED',
    });
  });

  it('fails closed when the pid changes hands while its executable is read (pid reuse)', async () => {
    // A /proc stand-in whose exe is a FIFO: the attestor blocks reading it while the "process" is replaced
    // (its start time changes), then the read completes. The result must be refused, not the new process's.
    const proc = tempDir();
    const pidDir = path.join(proc, '4242');
    fs.mkdirSync(pidDir);
    const stat = (start: number): string =>
      `4242 (some tool) S ${Array.from({ length: 18 }, (_, i) => String(i + 1)).join(' ')} ${start} 0 0\n`;
    fs.writeFileSync(path.join(pidDir, 'stat'), stat(1000));
    const fifo = path.join(proc, 'exe-fifo');
    execFileSync('mkfifo', [fifo]);
    fs.symlinkSync(fifo, path.join(pidDir, 'exe'));
    const pending = attestUnixPeer({ pid: 4242, uid: 0, gid: 0 }, proc);
    await new Promise((r) => setTimeout(r, 100));
    fs.writeFileSync(path.join(pidDir, 'stat'), stat(2000));
    const w = fs.openSync(fifo, 'w');
    fs.writeSync(w, 'another binary');
    fs.closeSync(w);
    await assert.rejects(pending, (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_WORKLOAD_ATTESTATION_FAILED');
      assert.match(e.message, /pid reuse/);
      return true;
    });
  });
});
