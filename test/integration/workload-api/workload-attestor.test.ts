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
import { peerCredentials } from '../../../src/agent/workload-attestor/peercred';
import {
  attestUnixPeer,
  identityChange,
  readProcessIdentity,
  type ProcessIdentity,
} from '../../../src/agent/workload-attestor/unix';
import { tempDir } from '../../support/agent';

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
    const uid = process.getuid!();
    const gid = process.getgid!();
    const a = await attestUnixPeer({ pid: process.pid, uid, gid }, { connectedAt: new Date() });
    const exe = fs.readlinkSync('/proc/self/exe');
    const digest = createHash('sha256').update(fs.readFileSync(exe)).digest('hex');
    assert.deepEqual(a.selectors, [
      { type: 'unix', value: `uid:${uid}` },
      { type: 'unix', value: `gid:${gid}` },
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
    fs.writeFileSync(path.join(pidDir, 'status'), 'Name:\tsome tool\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n');
    const fifo = path.join(proc, 'exe-fifo');
    execFileSync('mkfifo', [fifo]);
    fs.symlinkSync(fifo, path.join(pidDir, 'exe'));
    const pending = attestUnixPeer({ pid: 4242, uid: 0, gid: 0 }, { procRoot: proc });
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

  it('an exec keeps the pid and the start time but shows as a change of executable', async () => {
    const child = spawn('sh', ['-c', 'read line; exec sleep 30'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise((r) => child.once('exit', r));
    try {
      const before = readProcessIdentity(child.pid!);
      assert.equal(identityChange(before, readProcessIdentity(child.pid!)), undefined);
      child.stdin!.write('go\n');
      const sleep = fs.realpathSync(execFileSync('sh', ['-c', 'command -v sleep']).toString().trim());
      for (let i = 0; i < 100 && fs.readlinkSync(`/proc/${child.pid}/exe`) !== sleep; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const after = readProcessIdentity(child.pid!);
      assert.equal(after.startTime, before.startTime);
      assert.equal(after.exeLink, sleep);
      assert.match(identityChange(before, after) ?? '', /^executable .* -> .*sleep \(inode \d+\) \(exec\)$/);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  });

  it('any change of identity is reported: start time, executable, its content, uids, gids, groups', () => {
    const base: ProcessIdentity = {
      pid: 10,
      startTime: '500',
      uids: '1000 1000 1000 1000',
      gids: '1000 1000 1000 1000',
      groups: '1000 27',
      exeLink: '/usr/bin/tool',
      exe: { dev: 1n, ino: 2n, size: 3n, mtimeNs: 4n, ctimeNs: 5n },
    };
    const cases: [Partial<ProcessIdentity>, RegExp][] = [
      [{ startTime: '501' }, /^start time 500 -> 501 \(pid reuse\)$/],
      [{ exe: { ...base.exe, ino: 9n } }, /\(exec\)$/],
      [{ exe: { ...base.exe, dev: 9n } }, /\(exec\)$/],
      [{ exeLink: '/usr/bin/tool (deleted)' }, /^executable path/],
      [{ exe: { ...base.exe, size: 9n } }, /was modified$/],
      [{ exe: { ...base.exe, mtimeNs: 9n } }, /was modified$/],
      [{ exe: { ...base.exe, ctimeNs: 9n } }, /was modified$/],
      [{ uids: '1000 0 0 0' }, /^uids /],
      [{ gids: '1000 0 0 0' }, /^gids /],
      [{ groups: '1000 27 0' }, /^groups /],
    ];
    assert.equal(identityChange(base, { ...base }), undefined);
    for (const [change, expected] of cases) {
      assert.match(
        identityChange(base, { ...base, ...change }) ?? 'nothing',
        expected,
        JSON.stringify(change, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
      );
    }
  });

  describe('a pid that changed hands before it was looked at', () => {
    /** A /proc stand-in: boot `bootAgoS` seconds ago, pid 77 started `startS` s after boot, running as `uid`. */
    const fakeProc = (o: { bootAgoS: number; startS: number; uid: number }): string => {
      const proc = tempDir();
      const bootTime = Math.floor(Date.now() / 1000) - o.bootAgoS;
      fs.writeFileSync(path.join(proc, 'stat'), `cpu  1 2 3\nbtime ${bootTime}\nprocesses 9\n`);
      const pidDir = path.join(proc, '77');
      fs.mkdirSync(pidDir);
      const fields = Array.from({ length: 18 }, (_, i) => String(i + 1)).join(' ');
      fs.writeFileSync(path.join(pidDir, 'stat'), `77 (tool) S ${fields} ${o.startS * 100} 0 0\n`);
      fs.writeFileSync(
        path.join(pidDir, 'status'),
        `Name:\ttool\nUid:\t${o.uid}\t${o.uid}\t${o.uid}\t${o.uid}\nGid:\t${o.uid}\t${o.uid}\t${o.uid}\t${o.uid}\n`,
      );
      fs.writeFileSync(path.join(proc, 'tool-binary'), 'binary');
      fs.symlinkSync(path.join(proc, 'tool-binary'), path.join(pidDir, 'exe'));
      // The stand-in process shares the agent's mount namespace (the link's text is all that is compared).
      fs.mkdirSync(path.join(pidDir, 'ns'));
      fs.symlinkSync(fs.readlinkSync('/proc/self/ns/mnt'), path.join(pidDir, 'ns', 'mnt'));
      return proc;
    };
    const cred = { pid: 77, uid: 1000, gid: 1000 };

    it("accepts a process of the peer's uid that started before the connection", async () => {
      const procRoot = fakeProc({ bootAgoS: 3600, startS: 60, uid: 1000 });
      const a = await attestUnixPeer(cred, { procRoot, connectedAt: new Date() });
      assert.ok(a.selectors.some((sel) => sel.value === `path:${path.join(procRoot, 'tool-binary')}`));
    });

    it('refuses a process of another uid', async () => {
      const procRoot = fakeProc({ bootAgoS: 3600, startS: 60, uid: 0 });
      await assert.rejects(
        attestUnixPeer(cred, { procRoot, connectedAt: new Date() }),
        /no longer runs as uid 1000/,
      );
    });

    it('refuses a process that started after the connection was accepted', async () => {
      // Booted an hour ago, started 3590 s after boot = 10 s ago; the connection was accepted a minute ago.
      const procRoot = fakeProc({ bootAgoS: 3600, startS: 3590, uid: 1000 });
      await assert.rejects(
        attestUnixPeer(cred, { procRoot, connectedAt: new Date(Date.now() - 60_000) }),
        /started after the connection/,
      );
    });
  });
  describe('what the executable really is', function () {
    this.timeout(20_000);
    const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    const selector = (a: { selectors: { value: string }[] }, kind: string): string | undefined =>
      a.selectors.find((sel) => sel.value.startsWith(`${kind}:`))?.value.slice(kind.length + 1);
    /** A copy of sleep(1) with one byte of its help text changed: same size, runs the same, hashes differently. */
    const variant = (file: string, from: string, to: string): void => {
      const buf = fs.readFileSync('/bin/sleep');
      const at = buf.indexOf(Buffer.from(from));
      assert.ok(at >= 0, `no ${from} in /bin/sleep`);
      buf.write(to, at);
      fs.writeFileSync(file, buf, { mode: 0o755 });
    };
    /** Waits until `pid` runs `exe` (after the exec of a wrapper such as unshare). */
    const runs = async (pid: number, exe: string): Promise<void> => {
      for (let i = 0; i < 100; i++) {
        try {
          if (fs.readlinkSync(`/proc/${pid}/exe`) === exe) return;
        } catch {
          // not there yet
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.fail(`pid ${pid} never ran ${exe}`);
    };
    const attestChild = async (
      argv: string[],
      exe: string,
    ): Promise<Awaited<ReturnType<typeof attestUnixPeer>>> => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await runs(child.pid!, exe);
        return await attestUnixPeer(
          { pid: child.pid!, uid: process.getuid!(), gid: process.getgid!() },
          { connectedAt: new Date() },
        );
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
    };

    it('a file patched in place with its mtime reset (touch -r) hashes anew, not from the cache', async () => {
      const dir = tempDir();
      const bin = path.join(dir, 'tool');
      variant(bin, 'Pause for NUMBER', 'Pause for NUMBER');
      // Let its ctime settle so the first hash is cached (a file changed just now is never cached).
      await new Promise((r) => setTimeout(r, 2_100));
      const first = await attestChild([bin, '30'], bin);
      assert.equal(selector(first, 'sha256'), sha(bin));
      const ref = path.join(dir, 'ref');
      fs.copyFileSync(bin, ref);
      execFileSync('touch', ['-r', bin, ref]);
      const fd = fs.openSync(bin, 'r+');
      const at = fs.readFileSync(bin).indexOf(Buffer.from('Pause for NUMBER'));
      fs.writeSync(fd, Buffer.from('X'), 0, 1, at);
      fs.closeSync(fd);
      execFileSync('touch', ['-r', ref, bin]);
      assert.equal(fs.statSync(bin).mtimeMs, fs.statSync(ref).mtimeMs);
      const second = await attestChild([bin, '30'], bin);
      assert.notEqual(sha(bin), sha(ref));
      assert.equal(selector(second, 'sha256'), sha(bin));
    });

    it('a process in its own mount namespace running another file bind-mounted over a trusted path gets no unix:path', async () => {
      const dir = tempDir();
      const legit = path.join(dir, 'legit');
      const evil = path.join(dir, 'evil');
      variant(legit, 'Pause for NUMBER', 'Pause for NUMBER');
      variant(evil, 'Pause for NUMBER', 'Evil! for NUMBER');
      // As root a mount namespace alone; otherwise a user namespace too (unprivileged, where the kernel allows).
      const flags = process.getuid!() === 0 ? ['-m'] : ['-Urm'];
      const script = `mount --bind ${evil} ${legit} && exec ${legit} 30`;
      const inNs = await attestChild(
        ['unshare', ...flags, '--propagation', 'private', 'sh', '-c', script],
        legit,
      );
      assert.equal(selector(inNs, 'path'), undefined);
      assert.match(inNs.pathWithheld ?? '', /another mount namespace/);
      assert.equal(selector(inNs, 'sha256'), sha(evil));

      // The same file run normally, in the agent's namespace, is named by its path.
      const normal = await attestChild([legit, '30'], legit);
      assert.equal(selector(normal, 'path'), legit);
      assert.equal(selector(normal, 'sha256'), sha(legit));
    });

    it('no unix:path when the path now holds another file than the one running (replaced after exec)', async () => {
      const dir = tempDir();
      const bin = path.join(dir, 'tool');
      const other = path.join(dir, 'other');
      variant(bin, 'Pause for NUMBER', 'Pause for NUMBER');
      variant(other, 'Pause for NUMBER', 'Other for NUMBER');
      fs.copyFileSync(bin, path.join(dir, 'copy'));
      const child = spawn(bin, ['30'], { stdio: 'ignore' });
      const exited = new Promise((r) => child.once('exit', r));
      try {
        await runs(child.pid!, bin);
        fs.renameSync(other, bin);
        const a = await attestUnixPeer(
          { pid: child.pid!, uid: process.getuid!(), gid: process.getgid!() },
          { connectedAt: new Date() },
        );
        assert.equal(selector(a, 'path'), undefined);
        // The kernel marks the link "(deleted)" once the name went to another file: either way, no path.
        assert.match(a.pathWithheld ?? '', /\(deleted\) cannot be looked up|not the file the process runs/);
        assert.equal(selector(a, 'sha256'), sha(path.join(dir, 'copy')));
      } finally {
        child.kill('SIGKILL');
        await exited;
      }
    });
  });
});
