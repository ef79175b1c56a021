/**
 * The unix workload attestor: selectors for a local process from its kernel credentials and /proc.
 *
 *   unix:uid:<n>  unix:gid:<n>      from SO_PEERCRED (taken at connect time)
 *   unix:path:<p>                   /proc/<pid>/exe, only when it provably names the running file (below)
 *   unix:sha256:<hex>               SHA-256 of the running executable, read through /proc/<pid>/exe
 *
 * The process's identity (start time, uid/gid lines, the running executable's device, inode, size, mtime and
 * ctime, and the exe link's text) is read before and after everything else, and the attestation fails closed
 * when the two reads differ: the process exec'd (exec keeps the start time but changes the executable) or
 * the pid changed hands. The caller keeps that identity and compares later reads with it (see
 * workload-api/attested-connection.ts).
 *
 * Pid reuse (the peer exits and another process takes its pid before we look): the process found must run
 * as the peer's uid and must have started before the connection was accepted.
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
import { LanyardError, WorkloadAttestationFailedError } from '../../errors';
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
  /** Who the process was, read before and after the selectors and the same both times. */
  identity: ProcessIdentity;
  /** SHA-256 of the executable, hex. */
  sha256: string;
}

/**
 * What must stay the same for a process to still be the one attested. The start time survives exec; the
 * executable (device, inode) and the link text do not; size, mtime and ctime change when the file is written
 * in place; the Uid/Gid/Groups lines change with setuid programs and set*id calls.
 */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
  uids: string;
  gids: string;
  groups: string;
  exeLink: string;
  exe: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint };
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
  const before = readProcessIdentity(cred.pid, procRoot);
  // The pid may already belong to another process (the peer exited before we looked): the process found must
  // run as the peer's user and must have existed when the connection was accepted.
  if (effectiveUid(before) !== cred.uid) {
    throw failed(`pid ${cred.pid} no longer runs as uid ${cred.uid} (pid reuse, or a setuid exec)`);
  }
  if (options.connectedAt !== undefined) {
    // btime has whole-second resolution: allow one second of slack.
    const startedMs = (bootTime(procRoot) + Number(before.startTime) / USER_HZ) * 1000;
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
  if (exe.stat.dev !== before.exe.dev || exe.stat.ino !== before.exe.ino) {
    throw failed(
      `pid ${cred.pid} changed while it was being attested (exec, or pid reuse): executable inode ` +
        `${before.exe.ino} -> ${exe.stat.ino}`,
    );
  }
  const seen = pathSeen(dir, exe.stat);
  const after = readProcessIdentity(cred.pid, procRoot);
  const changed = identityChange(before, after);
  if (changed !== undefined) {
    throw failed(`pid ${cred.pid} changed while it was being attested (exec, or pid reuse): ${changed}`);
  }
  if (seen.path !== undefined) selectors.push({ type: UNIX_SELECTOR_TYPE, value: `path:${seen.path}` });
  selectors.push({ type: UNIX_SELECTOR_TYPE, value: `sha256:${exe.digest}` });
  return {
    selectors,
    ...(seen.path !== undefined && { exePath: seen.path }),
    ...(seen.withheld !== undefined && { pathWithheld: seen.withheld }),
    identity: after,
    sha256: exe.digest,
  };
}

/**
 * Reads who `pid` is now (cheap: no hashing), for comparing with an earlier read.
 * @throws LanyardError(ERR_WORKLOAD_ATTESTATION_FAILED) when the process is gone or /proc cannot be read.
 */
export function readProcessIdentity(pid: number, procRoot = '/proc'): ProcessIdentity {
  const dir = `${procRoot}/${pid}`;
  const startTime = readStartTime(dir);
  let status: string;
  try {
    status = fs.readFileSync(`${dir}/status`, 'utf8');
  } catch (e) {
    throw failed(`the process ${dir} is gone`, e);
  }
  const line = (name: string): string | undefined =>
    new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim().replace(/\s+/g, ' ');
  const uids = line('Uid');
  const gids = line('Gid');
  if (uids === undefined || gids === undefined) throw failed(`cannot read the uid and gid in ${dir}/status`);
  let exeLink: string;
  let exe: fs.BigIntStats;
  try {
    exeLink = fs.readlinkSync(`${dir}/exe`);
    // Follows the magic link to the file the process runs, wherever its name went.
    exe = fs.statSync(`${dir}/exe`, { bigint: true });
  } catch (e) {
    throw failed(`cannot read the executable of pid ${pid}: ${(e as NodeJS.ErrnoException).code ?? e}`, e);
  }
  return {
    pid,
    startTime,
    uids,
    gids,
    groups: line('Groups') ?? '',
    exeLink,
    exe: { dev: exe.dev, ino: exe.ino, size: exe.size, mtimeNs: exe.mtimeNs, ctimeNs: exe.ctimeNs },
  };
}

/** What differs between two reads of a process's identity, or undefined when nothing does. */
export function identityChange(was: ProcessIdentity, now: ProcessIdentity): string | undefined {
  if (was.pid !== now.pid) return `pid ${was.pid} -> ${now.pid}`;
  if (was.startTime !== now.startTime) return `start time ${was.startTime} -> ${now.startTime} (pid reuse)`;
  if (was.exe.dev !== now.exe.dev || was.exe.ino !== now.exe.ino) {
    return `executable ${was.exeLink} (inode ${was.exe.ino}) -> ${now.exeLink} (inode ${now.exe.ino}) (exec)`;
  }
  if (was.exeLink !== now.exeLink) return `executable path ${was.exeLink} -> ${now.exeLink}`;
  if (
    was.exe.size !== now.exe.size ||
    was.exe.mtimeNs !== now.exe.mtimeNs ||
    was.exe.ctimeNs !== now.exe.ctimeNs
  ) {
    return `executable ${now.exeLink} was modified`;
  }
  if (was.uids !== now.uids) return `uids ${was.uids} -> ${now.uids}`;
  if (was.gids !== now.gids) return `gids ${was.gids} -> ${now.gids}`;
  if (was.groups !== now.groups) return `groups ${was.groups} -> ${now.groups}`;
  return undefined;
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

/** The effective uid: the second field of the Uid: line. */
function effectiveUid(id: ProcessIdentity): number {
  const euid = id.uids.split(' ')[1];
  if (euid === undefined || !/^\d+$/.test(euid)) throw failed(`cannot read the uid of pid ${id.pid}`);
  return Number(euid);
}

/** Boot time, seconds since the epoch (btime in /proc/stat). */
function bootTime(procRoot: string): number {
  const m = /^btime\s+(\d+)$/m.exec(fs.readFileSync(`${procRoot}/stat`, 'utf8'));
  if (m === null) throw failed(`cannot read btime in ${procRoot}/stat`);
  return Number(m[1]);
}

/** Field 22 (starttime, in clock ticks since boot) of /proc/<pid>/stat; the comm field may hold spaces. */
function readStartTime(dir: string): string {
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
  return new WorkloadAttestationFailedError(message, cause ? { cause } : undefined);
}
