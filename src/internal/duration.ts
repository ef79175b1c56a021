/**
 * The one duration syntax of Lanyard, for CLI flags and the config file alike: a whole number with a unit,
 * s, m, h or d ("90s", "15m", "1h", "7d"). A bare number is refused rather than read as seconds: "--ttl 10"
 * meant ten minutes as often as ten seconds, and a silent guess at a lifetime is a security setting gone wrong.
 */
import { InvalidArgumentError } from '../errors';

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

export const DURATION_EXAMPLES = '"90s", "15m", "1h" or "7d"';

/** Seconds in `text`; InvalidArgumentError (naming `what`) for anything else, zero, or a bare number. */
export function parseDurationSeconds(text: string, what: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    throw new InvalidArgumentError(
      `${what}: "${text}" has no unit: write ${trimmed}s, ${trimmed}m, ${trimmed}h or ${trimmed}d`,
    );
  }
  const m = /^(\d+)([smhd])$/.exec(trimmed);
  if (m === null) {
    throw new InvalidArgumentError(`${what}: "${text}" is not a duration like ${DURATION_EXAMPLES}`);
  }
  const seconds = Number(m[1]) * (UNIT_SECONDS[m[2]!] ?? 1);
  if (!Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new InvalidArgumentError(`${what}: "${text}" must be a positive duration`);
  }
  return seconds;
}
