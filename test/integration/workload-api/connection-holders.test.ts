/**
 * Who holds the client's end of a Unix-socket connection, and whether the process that connected is still
 * there: the kernel's answers for real processes (Python clients) connecting to a real socket.
 */
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import {
  ConnectionHolders,
  clientEndInode,
  requireSoleHolder,
} from '../../../src/agent/workload-attestor/connection-holders';
import { PeerProcess } from '../../../src/agent/workload-attestor/peer-process';
import { peerCredentials } from '../../../src/agent/workload-attestor/peercred';
import { tempDir } from '../../support/agent';

/**
 * Each script connects to argv[1] and prints "<pid> <fd> [<other pid>]" once its descriptors are where the
 * case wants them, then waits for stdin to close.
 */
const SCRIPTS = {
  sole: `
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
print(os.getpid(), s.fileno(), flush=True); sys.stdin.read()
`,
  inheritable: `
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.set_inheritable(True)
print(os.getpid(), s.fileno(), flush=True); sys.stdin.read()
`,
  forked: `
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
child = os.fork()
if child == 0:
    time.sleep(60); os._exit(0)
print(os.getpid(), s.fileno(), child, flush=True); sys.stdin.read(); os.kill(child, 9)
`,
  // The receiver exists before the connection, so it holds the descriptor only by receiving it (SCM_RIGHTS).
  passed: `
import os, socket, sys, time
mine, theirs = socket.socketpair()
child = os.fork()
if child == 0:
    mine.close(); fds = socket.recv_fds(theirs, 1, 1)[1]; theirs.send(b'k'); time.sleep(60); os._exit(0)
theirs.close()
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
socket.send_fds(mine, [b'x'], [s.fileno()]); fd = s.fileno(); s.close(); mine.recv(1)
print(os.getpid(), fd, child, flush=True); sys.stdin.read(); os.kill(child, 9)
`,
  // Acts on its connection on command: "move" dups it to another descriptor and closes the first (both
  // close-on-exec), "inherit" clears close-on-exec; it answers "ok <fd>" after each.
  commanded: `
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); fd = s.fileno()
print(os.getpid(), fd, flush=True)
for line in sys.stdin:
    if line.strip() == 'move':
        new = os.dup(fd); os.close(fd); s.detach(); fd = new
    elif line.strip() == 'inherit':
        os.set_inheritable(fd, True)
    print('ok', fd, flush=True)
`,
  // Parked in a message nobody has received yet: no process table shows it.
  inFlight: `
import os, socket, sys
mine, theirs = socket.socketpair()
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
socket.send_fds(mine, [b'x'], [s.fileno()]); fd = s.fileno(); s.close()
print(os.getpid(), fd, flush=True); sys.stdin.read()
`,
};

interface Connected {
  socket: net.Socket;
  child: ChildProcess;
  pid: number;
  fd: number;
  other?: number;
  close(): Promise<void>;
}

describe('node agent: who holds a Workload API connection', function () {
  this.timeout(30_000);
  let server: net.Server;
  let sockPath: string;
  const accepted: net.Socket[] = [];

  before(async () => {
    sockPath = path.join(tempDir(), 'holders.sock');
    server = net.createServer((s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(sockPath, r));
  });

  after(() => {
    for (const s of accepted) s.destroy();
    server.close();
  });

  async function connect(script: keyof typeof SCRIPTS): Promise<Connected> {
    const before = accepted.length;
    const child = spawn('python3', ['-c', SCRIPTS[script], sockPath], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.once('exit', (code) => reject(new Error(`${script} exited (${code}) before it was ready`)));
    });
    for (let i = 0; i < 100 && accepted.length === before; i++) await new Promise((r) => setTimeout(r, 20));
    const [pid, fd, other] = line.split(' ').map(Number);
    return {
      socket: accepted[before]!,
      child,
      pid: pid!,
      fd: fd!,
      ...(other !== undefined && { other }),
      async close() {
        child.stdin!.end();
        child.kill('SIGKILL');
        await exited;
      },
    };
  }

  it("finds the client's end by inode: the socket the connecting process holds", async () => {
    const c = await connect('sole');
    try {
      assert.equal(peerCredentials(c.socket).pid, c.pid);
      assert.equal(fs.readlinkSync(`/proc/${c.pid}/fd/${c.fd}`), `socket:[${clientEndInode(c.socket)}]`);
    } finally {
      await c.close();
    }
  });

  it('accepts the connecting process holding it alone, close-on-exec', async () => {
    const c = await connect('sole');
    try {
      await requireSoleHolder(clientEndInode(c.socket), c.pid, { allowInheritable: false });
    } finally {
      await c.close();
    }
  });

  it('refuses a descriptor that is not close-on-exec, unless inheritable connections are allowed', async () => {
    const c = await connect('inheritable');
    try {
      const inode = clientEndInode(c.socket);
      await assert.rejects(requireSoleHolder(inode, c.pid, { allowInheritable: false }), {
        code: 'ERR_WORKLOAD_ATTESTATION_FAILED',
        message: new RegExp(`^pid ${c.pid} holds this connection without close-on-exec`),
      });
      await requireSoleHolder(inode, c.pid, { allowInheritable: true });
    } finally {
      await c.close();
    }
  });

  it('refuses a connection a forked child holds too', async () => {
    const c = await connect('forked');
    try {
      await assert.rejects(requireSoleHolder(clientEndInode(c.socket), c.pid, { allowInheritable: true }), {
        code: 'ERR_WORKLOAD_ATTESTATION_FAILED',
        message: new RegExp(`^this connection is also held by pid ${c.other} \\(a forked child`),
      });
    } finally {
      await c.close();
    }
  });

  it('refuses a connection handed to another process (SCM_RIGHTS) and closed by the one that opened it', async () => {
    const c = await connect('passed');
    try {
      await assert.rejects(requireSoleHolder(clientEndInode(c.socket), c.pid, { allowInheritable: true }), {
        code: 'ERR_WORKLOAD_ATTESTATION_FAILED',
        message: new RegExp(
          `^pid ${c.pid}, which opened this connection, no longer holds it .*; ` +
            `this connection is also held by pid ${c.other} `,
        ),
      });
    } finally {
      await c.close();
    }
  });

  it('refuses a connection whose descriptor is in flight (received by nobody yet): its opener no longer holds it', async () => {
    const c = await connect('inFlight');
    try {
      await assert.rejects(requireSoleHolder(clientEndInode(c.socket), c.pid, { allowInheritable: true }), {
        message: new RegExp(`^pid ${c.pid}, which opened this connection, no longer holds it [^;]*$`),
      });
    } finally {
      await c.close();
    }
  });

  it('after a full scan, follows the descriptor cheaply and scans again when it moved or lost close-on-exec', async () => {
    const c = await connect('commanded');
    let out = '';
    c.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const command = async (what: string): Promise<void> => {
      const before = out.length;
      c.child.stdin!.write(`${what}\n`);
      for (let i = 0; i < 200 && !out.slice(before).includes('\n'); i++)
        await new Promise((r) => setTimeout(r, 10));
    };
    try {
      const holders = new ConnectionHolders(clientEndInode(c.socket), c.pid, { allowInheritable: false });
      await holders.requireStillHeld();
      await command('move');
      // The descriptor it was seen with is gone; a new scan finds the other one, still its own and alone.
      await holders.requireStillHeld();
      await command('inherit');
      await assert.rejects(holders.requireStillHeld(), /holds this connection without close-on-exec/);
    } finally {
      await c.close();
    }
  });

  it('holds the connecting process by a pidfd and knows when it has exited', async () => {
    const c = await connect('sole');
    const proc = PeerProcess.open(c.socket, c.pid);
    try {
      // This kernel has SO_PEERPIDFD (Linux >= 6.5) or at least pidfd_open (>= 5.3).
      assert.notEqual(proc.source, 'none');
      assert.equal(proc.exited(), false);
      await c.close();
      assert.equal(proc.exited(), true);
    } finally {
      proc.close();
    }
  });
});
