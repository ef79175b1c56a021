/**
 * The unix workload attestor: selectors for a local process from its kernel credentials and /proc.
 *
 *   unix:uid:<n>  unix:gid:<n>      from SO_PEERCRED (taken at connect time)
 *   unix:path:<p>                   /proc/<pid>/exe, only when it provably names the running file (below)
 *   unix:sha256:<hex>               SHA-256 of the running executable, read through /proc/<pid>/exe
 *
 * Pid reuse (the peer exits and another process takes its pid before we look): the process found must run
 * as the peer's uid and must have started before the connection was accepted, and its start time (field 22
 * of /proc/<pid>/stat) is read again after everything else: if it changed, the attestation fails closed.
 *
 * The executable is opened once through the /proc link (the kernel hands out the file the process runs, not
 * whatever sits at its path now), fstat'ed and hashed from that one descriptor. Hashes are cached by device,
 * inode, size, mtime and ctime: the owner can reset mtime after patching a file in place (touch -r), but
 * not ctime, and a file whose ctime is too recent to be told apart at the filesystem's clock granularity is
 * not cached at all.
 *
 * The link's text is the path as the process's own mount namespace sees it: a process in a namespace of its
 * own can bind-mount anything over a trusted path and run it. So unix:path is emitted only when the process
 * shares the agent's mount namespace and the path, looked up by the agent, is the very file being run
 * (same device and inode); otherwise the selector is withheld and the attestation says why.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { ErrorCode, LanyardError } from '../../errors';
import type { Selector } from '../../store/types';
import type { PeerCredentials } from './peercred';

export const UNIX_SELECTOR_TYPE = 'unix';

const hashCache = new Map<string, string>();
const MAX_CACHED_HASHES = 256;

export interface UnixAttestation {
  selectors: Selector[];
  /** For logs. */
  exePath?: string;
  /** Why unix:path was withheld (for debug logs); undefined when it was emitted. */
  pathWithheld?: string;
  /** The running executable (device and inode) and the start time: a later call must find the same. */
  exe: { dev: bigint; ino: bigint };
  startTime: string;
}

/** Linux reports process start times in USER_HZ ticks, 100 per second on every architecture Node runs on. */
const USER_HZ = 100;

export interface UnixAttestOptions {
  /** Where /proc is (tests point this at a stand-in). */
  procRoot?: string;
  /** When the connection was accepted: a process that started later cannot be the one that connected. */
  connectedAt?: Date;
}

export async function attestUnixPeer(
  cred: PeerCredentials,
  options: UnixAttestOptions = {},
): Promise<UnixAttestation> {
  const procRoot = options.procRoot ?? '/proc';
  const selectors: Selector[] = [
    { type: UNIX_SELECTOR_TYPE, value: `uid:${cred.uid}` },
    { type: UNIX_SELECTOR_TYPE, value: `gid:${cred.gid}` },
  ];
  const dir = `${procRoot}/${cred.pid}`;
  const before = startTime(dir);
  // The pid may already belong to another process (the peer exited before we looked): the process found must
  // run as the peer's user and must have existed when the connection was accepted.
  if (effectiveUid(dir) !== cred.uid) {
    throw failed(`pid ${cred.pid} no longer runs as uid ${cred.uid} (pid reuse)`);
  }
  if (options.connectedAt !== undefined) {
    // btime has whole-second resolution: allow one second of slack.
    const startedMs = (bootTime(procRoot) + Number(before) / USER_HZ) * 1000;
    if (startedMs > options.connectedAt.getTime() + 1000) {
      throw failed(`pid ${cred.pid} started after the connection was accepted (pid reuse)`);
    }
  }
  let exe: ExeFile;
  try {
    exe = await openExe(`${dir}/exe`);
  } catch (e) {
    throw failed(
      `cannot read the executable of pid ${cred.pid}: ${(e as NodeJS.ErrnoException).code ?? e}`,
      e,
    );
  }
  const seen = pathSeen(dir, exe.stat);
  if (startTime(dir) !== before) {
    throw failed(`pid ${cred.pid} changed while it was being attested (pid reuse)`);
  }
  if (seen.path !== undefined) selectors.push({ type: UNIX_SELECTOR_TYPE, value: `path:${seen.path}` });
  selectors.push({ type: UNIX_SELECTOR_TYPE, value: `sha256:${exe.digest}` });
  return {
    selectors,
    ...(seen.path !== undefined && { exePath: seen.path }),
    ...(seen.withheld !== undefined && { pathWithheld: seen.withheld }),
    exe: { dev: exe.stat.dev, ino: exe.stat.ino },
    startTime: before,
  };
}

/**
 * The exe link's text, when it names the running file for the agent too: same mount namespace as the agent,
 * and the path, resolved by the agent, is the same device and inode as the file opened through the link.
 */
function pathSeen(dir: string, running: fs.BigIntStats): { path?: string; withheld?: string } {
  let linkText: string;
  try {
    linkText = fs.readlinkSync(`${dir}/exe`);
  } catch (e) {
    return { withheld: `the exe link cannot be read: ${(e as NodeJS.ErrnoException).code ?? e}` };
  }
  let theirs: string;
  let ours: string;
  try {
    theirs = fs.readlinkSync(`${dir}/ns/mnt`);
    ours = fs.readlinkSync('/proc/self/ns/mnt');
  } catch (e) {
    return { withheld: `mount namespaces cannot be compared: ${(e as NodeJS.ErrnoException).code ?? e}` };
  }
  if (theirs !== ours) {
    return { withheld: `the process runs in another mount namespace (${theirs}, the agent's is ${ours})` };
  }
  let atPath: fs.BigIntStats;
  try {
    atPath = fs.statSync(linkText, { bigint: true });
  } catch (e) {
    return { withheld: `${linkText} cannot be looked up: ${(e as NodeJS.ErrnoException).code ?? e}` };
  }
  if (atPath.dev !== running.dev || atPath.ino !== running.ino) {
    return { withheld: `${linkText} is not the file the process runs (replaced or mounted over)` };
  }
  return { path: linkText };
}

/** The effective uid (second field of the Uid: line) of /proc/<pid>/status. */
function effectiveUid(dir: string): number {
  let status: string;
  try {
    status = fs.readFileSync(`${dir}/status`, 'utf8');
  } catch (e) {
    throw failed(`the process ${dir} is gone`, e);
  }
  const m = /^Uid:\s+\d+\s+(\d+)/m.exec(status);
  if (m === null) throw failed(`cannot read the uid in ${dir}/status`);
  return Number(m[1]);
}

/** Boot time, seconds since the epoch (btime in /proc/stat). */
function bootTime(procRoot: string): number {
  const m = /^btime\s+(\d+)$/m.exec(fs.readFileSync(`${procRoot}/stat`, 'utf8'));
  if (m === null) throw failed(`cannot read btime in ${procRoot}/stat`);
  return Number(m[1]);
}

/** Field 22 (starttime, in clock ticks since boot) of /proc/<pid>/stat; the comm field may hold spaces. */
function startTime(dir: string): string {
  let stat: string;
  try {
    stat = fs.readFileSync(`${dir}/stat`, 'utf8');
  } catch (e) {
    throw failed(`the process ${dir} is gone`, e);
  }
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field 22 is rest[19].
  const value = rest[19];
  if (value === undefined || !/^\d+$/.test(value)) throw failed(`cannot read the start time in ${dir}/stat`);
  return value;
}

interface ExeFile {
  stat: fs.BigIntStats;
  digest: string;
}

/** How recent a ctime must not be to be cached: several ticks of the coarsest kernel file clock (10 ms). */
const CTIME_SETTLE_NS = 2_000_000_000n;

/** Opens the executable once; its identity and its hash both come from that descriptor. */
async function openExe(link: string): Promise<ExeFile> {
  const handle = await fs.promises.open(link, fs.constants.O_RDONLY);
  try {
    const stat = await handle.stat({ bigint: true });
    const key = cacheKey(stat);
    const cached = hashCache.get(key);
    if (cached !== undefined) return { stat, digest: cached };
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(64 * 1024);
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
    const digest = hash.digest('hex');
    // Cache only what was stable while it was read, and not a file changed just now: a write in the same
    // clock tick as the ctime we saw would leave ctime as it was.
    const after = await handle.stat({ bigint: true });
    const nowNs = BigInt(Date.now()) * 1_000_000n;
    if (cacheKey(after) === key && nowNs - stat.ctimeNs > CTIME_SETTLE_NS) {
      if (hashCache.size >= MAX_CACHED_HASHES) hashCache.clear();
      hashCache.set(key, digest);
    }
    return { stat, digest };
  } finally {
    await handle.close();
  }
}

function cacheKey(st: fs.BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

function failed(message: string, cause?: unknown): LanyardError {
  return new LanyardError(ErrorCode.WORKLOAD_ATTESTATION_FAILED, message, cause ? { cause } : undefined);
}
