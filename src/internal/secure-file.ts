import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { AlreadyExistsError, IoError, LanyardError } from '../errors';

/**
 * Writing secrets to disk without ever exposing them: a file is staged beside its target with its final mode
 * from the first byte, synced, then renamed (or hard-linked, to refuse replacing) into place, so a reader sees
 * either the old file or the whole new one and a crash leaves at most a dot-named temp file.
 *
 * Error messages name paths and errno codes only, never file contents.
 */

/** Temp files are `.<name>.<12 hex>.tmp`; a crash between stage and publish can leave one behind. */
export const STAGED_FILE_PATTERN = /^\..+\.[0-9a-f]{12}\.tmp$/;

/**
 * Creates `dir` (and missing parents) with exactly `mode`, whatever the umask; with `exact`, also narrows an
 * existing `dir` to `mode`. Existing parents are left as they are.
 */
export function makeDir(dir: string, mode: number, exact = false): void {
  ioStep(`cannot create ${dir}`, () => {
    const first = mkdirSync(dir, { recursive: true, mode });
    // mkdir applies the umask: 0700 under umask 0277 would be 0500. Every directory created here is set to
    // `mode` itself, from `dir` up to the first one created.
    if (first !== undefined) {
      const top = resolve(first);
      for (let d = resolve(dir); ; d = dirname(d)) {
        chmodSync(d, mode);
        if (d === top || d === dirname(d)) break;
      }
    }
    if (exact) chmodDir(dir, mode);
  });
}

/** Replaces `path` atomically; readers see the old content or the new, never a mix. */
export function writeFileAtomic(path: string, data: string, mode: number): void {
  const staged = stageFile(path, data, mode);
  try {
    publishFile(staged, path, true);
  } finally {
    rmSync(staged, { force: true });
  }
}

/** Creates `path` atomically. @throws AlreadyExistsError when it exists: an existing file is never replaced. */
export function writeNewFileAtomic(path: string, data: string, mode: number): void {
  const staged = stageFile(path, data, mode);
  try {
    publishFile(staged, path, false);
  } finally {
    rmSync(staged, { force: true });
  }
}

/**
 * Writes `data` to a fresh temp file beside `path`, created with `mode` from the start (so a key is never
 * readable by others, even for a moment) and synced, and returns its name.
 */
export function stageFile(path: string, data: string, mode: number): string {
  const staged = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  ioStep(`cannot write ${path}`, () => {
    const fd = openSync(staged, 'wx', mode);
    try {
      // The umask may have narrowed `mode`; set it exactly (0644 stays 0644 under umask 077).
      fchmodSync(fd, mode);
      writeFileSync(fd, data);
      fsyncSync(fd);
    } catch (e) {
      rmSync(staged, { force: true });
      throw e;
    } finally {
      closeSync(fd);
    }
  });
  return staged;
}

/**
 * Moves a staged file into place. Without overwrite a hard link is used, which fails rather than replace.
 * The directory is synced afterwards so that the new name survives a power cut, not only the content.
 */
export function publishFile(staged: string, path: string, overwrite: boolean): void {
  try {
    if (overwrite) renameSync(staged, path);
    else linkSync(staged, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new AlreadyExistsError(`${path} already exists`);
    }
    throw ioError(`cannot write ${path}`, e);
  }
  syncDir(dirname(path));
}

/** Removes `path`; a missing file is not an error. The directory is synced so the removal is durable. */
export function removeFile(path: string): void {
  ioStep(`cannot remove ${path}`, () => rmSync(path, { force: true }));
  syncDir(dirname(path));
}

/** Permission bits of `path`, and whether group or others have any access (never on Windows). */
export function fileAccess(path: string): { mode: number; openToOthers: boolean; isFile: boolean } {
  const st = ioStep(`cannot read ${path}`, () => statSync(path));
  const mode = st.mode & 0o777;
  return { mode, openToOthers: process.platform !== 'win32' && (mode & 0o077) !== 0, isFile: st.isFile() };
}

export function ioStep<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof LanyardError) throw e;
    throw ioError(what, e);
  }
}

/** ERR_IO naming the step and the errno code. The cause is an fs error: paths and codes, no contents. */
export function ioError(what: string, e: unknown): LanyardError {
  const code = (e as NodeJS.ErrnoException).code;
  return new IoError(`${what}${code ? ` (${code})` : ''}`, { cause: e });
}

function chmodDir(dir: string, mode: number): void {
  if ((statSync(dir).mode & 0o777) !== mode) chmodSync(dir, mode);
}

/** Best effort: some platforms and file systems cannot fsync a directory, and the data is synced already. */
export function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Ignored on purpose; see above.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
