/**
 * The local admin socket: a Unix socket whose file permissions are the access control. Only the user that
 * runs the server (and root) can connect, because the data dir is 0700 and the socket itself 0600.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { IoError } from '../errors';

/** Creates the data dir 0700, or tightens an existing one to 0700. Returns true when it changed the mode. */
export function prepareDataDir(dir: string): boolean {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const mode = fs.statSync(dir).mode & 0o777;
  if (mode === 0o700) return false;
  fs.chmodSync(dir, 0o700);
  return true;
}

/**
 * Makes room for binding `socketPath`: removes a socket file left by a server that died, refuses when a
 * server still answers there or when the path is something other than a socket.
 */
export async function clearStaleSocket(socketPath: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(socketPath);
  } catch {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    return;
  }
  if (!stat.isSocket()) {
    throw new IoError(`${socketPath} exists and is not a socket; refusing to replace it`);
  }
  if (await answers(socketPath)) {
    throw new IoError(`another server is already listening on ${socketPath}`);
  }
  fs.unlinkSync(socketPath);
}

/**
 * Runs `bind` with umask 0177, so the socket file is created 0600 rather than made private a moment after
 * it appeared, then sets 0600 explicitly in case the platform ignores the umask for sockets.
 * The umask is process-wide; anything else the process creates meanwhile is merely more private.
 */
export async function bindPrivately<T>(socketPath: string, bind: () => Promise<T>): Promise<T> {
  const previous = process.umask(0o177);
  let result: T;
  try {
    result = await bind();
  } finally {
    process.umask(previous);
  }
  fs.chmodSync(socketPath, 0o600);
  return result;
}

/** Removes the socket file after the server closed, if it is still there. */
export function removeSocket(socketPath: string): void {
  try {
    if (fs.lstatSync(socketPath).isSocket()) fs.unlinkSync(socketPath);
  } catch {
    // already gone
  }
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
