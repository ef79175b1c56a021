/**
 * The unix workload attestor: selectors for a local process from its kernel credentials and /proc.
 *
 *   unix:uid:<n>  unix:gid:<n>      from SO_PEERCRED (taken at connect time)
 *   unix:path:<p>                   /proc/<pid>/exe
 *   unix:sha256:<hex>               SHA-256 of that executable, read through /proc/<pid>/exe
 *
 * Pid reuse (the peer exits and another process takes its pid before we look): the process found must run
 * as the peer's uid and must have started before the connection was accepted, and its start time (field 22
 * of /proc/<pid>/stat) is read again after everything else: if it changed, the attestation fails closed. The executable is hashed through the /proc link, so a file replaced on disk meanwhile does not
 * count, and hashes are cached by (device, inode, size, mtime) so a busy agent does not reread binaries.
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
  let exePath: string;
  let digest: string;
  try {
    exePath = fs.readlinkSync(`${dir}/exe`);
    digest = await exeSha256(`${dir}/exe`);
  } catch (e) {
    throw failed(
      `cannot read the executable of pid ${cred.pid}: ${(e as NodeJS.ErrnoException).code ?? e}`,
      e,
    );
  }
  if (startTime(dir) !== before) {
    throw failed(`pid ${cred.pid} changed while it was being attested (pid reuse)`);
  }
  selectors.push({ type: UNIX_SELECTOR_TYPE, value: `path:${exePath}` });
  selectors.push({ type: UNIX_SELECTOR_TYPE, value: `sha256:${digest}` });
  return { selectors, exePath };
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

async function exeSha256(link: string): Promise<string> {
  const st = fs.statSync(link);
  const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}`;
  const cached = hashCache.get(key);
  if (cached !== undefined) return cached;
  const hash = createHash('sha256');
  await new Promise<void>((resolve, reject) => {
    fs.createReadStream(link)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve())
      .on('error', reject);
  });
  const digest = hash.digest('hex');
  if (hashCache.size >= MAX_CACHED_HASHES) hashCache.clear();
  hashCache.set(key, digest);
  return digest;
}

function failed(message: string, cause?: unknown): LanyardError {
  return new LanyardError(ErrorCode.WORKLOAD_ATTESTATION_FAILED, message, cause ? { cause } : undefined);
}
