/**
 * Policy reloads into the server's audit trail. A changed policy changes what every later issuance and hop
 * decision means, so an investigator needs to see when it happened and from which version to which: each
 * successful reload is a `policy.reload` allow record (reason `old -> new`, subject the files), each refused
 * one a deny record with the reason it was refused (the previous set stays in force, named by policyVersion).
 */
import type { AuditEvent } from '../../audit/record';
import { isLanyardError } from '../../errors';
import type { PolicyEngine } from '../../policy';
import type { Logger } from '../../internal/logging';
import type { AuditRecorder } from './recorder';

/** In UTF-8 bytes, well inside the trail's field limit: a refusal's message may quote a long parse error. */
const MAX_REASON_CHARS = 1024;
const MAX_SUBJECT_CHARS = 1024;

/** The record of a reload that made `version` current in place of `previous`. */
export function policyReloadEvent(
  actor: string,
  version: string,
  previous: string,
  files: readonly string[],
): AuditEvent {
  return reloadRecord('allow', actor, files, `${previous} -> ${version}`, version);
}

/** The record of a reload refused with `err`; `current` is the version that stays in force. */
export function policyReloadFailedEvent(
  actor: string,
  current: string,
  sources: readonly string[],
  err: Error,
): AuditEvent {
  const why = isLanyardError(err) ? `${err.code}: ${err.message}` : err.message;
  return reloadRecord('deny', actor, sources, clip(why, MAX_REASON_CHARS), current);
}

/** A `policy.reload` record: the files it read as the subject, the version in force after it. */
function reloadRecord(
  decision: AuditEvent['decision'],
  actor: string,
  files: readonly string[],
  reason: string,
  policyVersion: string,
): AuditEvent {
  return {
    event: 'policy.reload',
    decision,
    actor,
    action: 'reload',
    subject: clip(files.join(','), MAX_SUBJECT_CHARS),
    reason,
    policyVersion,
  };
}

/**
 * Records every reload of `engine` through `recorder`, acting as `actor` (the server's SPIFFE ID). A record
 * that cannot be written is logged as an error: the reload itself already happened and cannot be undone.
 * @returns a function that stops recording.
 */
export function auditPolicyReloads(
  engine: PolicyEngine,
  recorder: AuditRecorder,
  options: { actor: string; sources: readonly string[]; logger: Logger },
): () => void {
  const write = (event: AuditEvent): void => {
    recorder
      .record(event)
      .catch((e: unknown) =>
        options.logger.error(
          { err: e, reason: event.reason },
          'policy reload not recorded in the audit trail',
        ),
      );
  };
  const onReload = (version: string, previous: string, files: readonly string[]): void =>
    write(policyReloadEvent(options.actor, version, previous, files));
  const onFailed = (err: Error): void =>
    write(policyReloadFailedEvent(options.actor, engine.version, options.sources, err));
  engine.on('reload', onReload);
  engine.on('reloadFailed', onFailed);
  return () => {
    engine.off('reload', onReload);
    engine.off('reloadFailed', onFailed);
  };
}

/** At most `max` UTF-8 bytes (the trail limits fields by bytes), marked when cut. */
function clip(s: string, max: number): string {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length <= max) return s;
  // A cut inside a multi-byte character decodes to U+FFFD: still well-formed, and within the room left.
  return `${bytes.subarray(0, max - 8).toString('utf8')}…`;
}
