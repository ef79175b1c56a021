/**
 * The unix workload attestor: selectors for a local process from its kernel credentials and /proc.
 *
 *   unix:uid:<n>  unix:gid:<n>      from SO_PEERCRED (taken at connect time)
 *   unix:path:<p>                   /proc/<pid>/exe
 *   unix:sha256:<hex>               SHA-256 of that executable, read through /proc/<pid>/exe
 *
 * Pid reuse: the process start time (field 22 of /proc/<pid>/stat) is read before and after everything
 * else; if the process it names changed (the peer exited and another took its pid), the attestation fails
 * closed. The executable is hashed through the /proc link, so a file replaced on disk meanwhile does not
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

export async function attestUnixPeer(cred: PeerCredentials, procRoot = '/proc'): Promise<UnixAttestation> {
  const selectors: Selector[] = [
    { type: UNIX_SELECTOR_TYPE, value: `uid:${cred.uid}` },
    { type: UNIX_SELECTOR_TYPE, value: `gid:${cred.gid}` },
  ];
  const dir = `${procRoot}/${cred.pid}`;
  const before = startTime(dir);
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
