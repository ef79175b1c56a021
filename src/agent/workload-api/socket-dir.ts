/**
 * The directory of the Workload API socket. Unlike the admin socket's (0700: the permissions are the access
 * control there), workloads of every user must reach this socket, so a directory the agent creates is 0755.
 * An existing directory is used as it is, unless someone else could swap the socket inside it: writable by
 * group or others without the sticky bit, or owned by a user other than root and the agent's.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { IoError } from '../../errors';

export function prepareWorkloadSocketDir(socketPath: string): void {
  const dir = path.dirname(path.resolve(socketPath));
  let created: string | undefined;
  try {
    created = fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new IoError(`cannot create the Workload API socket directory ${dir}`, {
      cause: e,
    });
  }
  // mkdir applied the umask; the directories this call made must still be 0755 for workloads to get through.
  if (created !== undefined) {
    for (let d = dir; ; d = path.dirname(d)) {
      fs.chmodSync(d, 0o755);
      if (d === created || d === path.dirname(d)) break;
    }
  }
  const st = fs.statSync(dir);
  if (!st.isDirectory()) {
    throw new IoError(`${dir} is not a directory: cannot hold the Workload API socket`);
  }
  const me = process.getuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== me) {
    throw new IoError(
      `${dir} is owned by uid ${st.uid}, neither root nor the agent's user: it could replace the socket`,
    );
  }
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    throw new IoError(
      `${dir} is writable by group or others without the sticky bit (mode ${(st.mode & 0o7777).toString(8)}): anyone could replace the socket`,
    );
  }
}
