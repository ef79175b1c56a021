import { readFileSync } from 'node:fs';
import { usageError } from './cli-error';

/** Read a file the user named on the command line; a missing or unreadable file is a usage error (exit 2). */
export function readInputFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const reason = (e as NodeJS.ErrnoException).code ?? 'unreadable';
    throw usageError(`cannot read ${what} ${path}: ${reason}`);
  }
}

export function parsePositiveInt(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || Number(value) <= 0 || !Number.isSafeInteger(Number(value))) {
    throw usageError(`${flag} must be a positive integer, got "${value}"`);
  }
  return Number(value);
}

/** Durations such as 90s, 15m, 1h, 7d, or a bare number of seconds. */
export function parseDuration(value: string, flag: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(value.trim());
  if (m === null) throw usageError(`${flag} must be a duration like 90s, 15m, 1h or 7d, got "${value}"`);
  const n = Number(m[1]);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = n * unit;
  if (seconds <= 0 || !Number.isSafeInteger(seconds)) throw usageError(`${flag} must be positive`);
  return seconds;
}

export function parseIsoTime(value: string, flag: string): Date {
  const d = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(d.getTime())) {
    throw usageError(`${flag} must be an ISO 8601 time, got "${value}"`);
  }
  return d;
}
