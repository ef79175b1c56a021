/**
 * Where policies come from: files, or directories whose `*.cedar` files (not recursive) are read in name
 * order. Reading is separate from compiling so a reload can read, compile and only then swap.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PolicyInvalidError } from '../errors';

export const POLICY_FILE_EXTENSION = '.cedar';

export interface PolicyFile {
  /** Absolute path: what error messages and logs name. */
  path: string;
  text: string;
}

/** The files a source list names now (a directory's members change as files are added or removed). */
export function listPolicyFiles(sources: readonly string[]): string[] {
  if (sources.length === 0) throw new PolicyInvalidError('no policy files configured');
  const files: string[] = [];
  for (const source of sources) {
    const abs = path.resolve(source);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(abs);
    } catch (e) {
      throw new PolicyInvalidError(`${abs}: cannot read: ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (!stat.isDirectory()) {
      files.push(abs);
      continue;
    }
    const members = fs
      .readdirSync(abs, { withFileTypes: true })
      .filter((d) => d.isFile() && d.name.endsWith(POLICY_FILE_EXTENSION))
      .map((d) => path.join(abs, d.name))
      .sort();
    // An empty directory is far more likely a mistake (wrong path, files not yet copied) than an intended
    // deny-everything policy; refuse it so the operator hears about it.
    if (members.length === 0) {
      throw new PolicyInvalidError(`${abs}: no *${POLICY_FILE_EXTENSION} files in it`);
    }
    files.push(...members);
  }
  return [...new Set(files)];
}

export function readPolicyFiles(sources: readonly string[]): PolicyFile[] {
  return listPolicyFiles(sources).map((file) => {
    try {
      return { path: file, text: fs.readFileSync(file, 'utf8') };
    } catch (e) {
      throw new PolicyInvalidError(`${file}: cannot read: ${(e as Error).message}`, {
        cause: e,
      });
    }
  });
}
