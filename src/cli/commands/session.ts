/**
 * `lanyard session start|show|list|end` and `lanyard svid revoke <serialHex>`. `start` is the agent's: it calls
 * the server's TLS listener with the agent's workload SVID and writes the session SVID. `show`, `list`, `end`
 * and `svid revoke` are the operator's, over the admin socket on the server host; revocations reach verifiers
 * by WatchRevocations and the CRL.
 */
import type { Command } from 'commander';
import { startSession } from '../../client/handoff';
import type { Session } from '../../gen/lanyard/v1/session';
import {
  callServerAs,
  saveObtainedIdentity,
  serverCallCommand,
  type ServerCallFlags,
} from '../agent-identity';
import { CliError, usageError } from '../cli-error';
import { isoSeconds } from '../format/svid-text';
import { parseDuration, parseSpiffeIdFlag, readInputFile } from '../input';
import { runAction } from '../run-action';
import { printResult, renderFields, renderTable } from '../output';
import { type AdminConnectionOptions, withAdminClient, withAdminOptions } from './server-admin';

interface ReasonOptions extends AdminConnectionOptions {
  reason?: string;
}

export function registerSessionCommands(program: Command): void {
  const session = program.command('session').description('task sessions of agents');
  registerSessionStart(session);
  registerSessionQueries(session);
  withAdminOptions(
    session
      .command('end')
      .description('end a session and every session delegated from it; their SVIDs are revoked')
      .argument('<sessionId>', 'the session id (s-…), as in the SVID agent context')
      .option('--reason <text>', 'recorded with the revocation (at most 256 bytes)'),
  ).action(
    runAction(async (sessionId: string, opts: ReasonOptions) => {
      const res = await withAdminClient(opts, (c) => c.endSession({ sessionId, reason: opts.reason ?? '' }));
      printResult(opts, { sessionId, endedSessionIds: res.endedSessionIds }, () =>
        res.endedSessionIds.length === 0
          ? `session ${sessionId} had already ended: nothing more to end\n`
          : `ended ${res.endedSessionIds.length} session(s):\n${res.endedSessionIds.map((s) => `  ${s}\n`).join('')}`,
      );
    }),
  );
}

/** Attached to the `svid` group by svid.ts. */
export function registerSvidRevokeCommand(svid: Command): void {
  withAdminOptions(
    svid
      .command('revoke')
      .description('revoke one certificate by serial number (hex; colons allowed, as openssl prints it)')
      .argument('<serialHex>', 'the certificate serial, e.g. from `lanyard svid inspect`')
      .option('--reason <text>', 'recorded with the revocation (at most 256 bytes)'),
  ).action(
    runAction(async (serialHex: string, opts: ReasonOptions) => {
      const { revocation } = await withAdminClient(opts, (c) =>
        c.revokeSvid({ serialHex, reason: opts.reason ?? '' }),
      );
      const r = {
        serialHex: revocation?.id ?? '',
        sequence: revocation?.sequence ?? 0,
        reason: revocation?.reason ?? '',
        revokedAt: revocation?.revokedAt?.toISOString() ?? '',
        expiresAt: revocation?.expiresAt?.toISOString() ?? '',
      };
      printResult(
        opts,
        r,
        () =>
          `revoked serial ${r.serialHex} (revocation ${r.sequence}, at ${r.revokedAt}; listed until ${r.expiresAt})\n`,
      );
    }),
  );
}

interface StartOptions extends ServerCallFlags {
  out: string;
  principal?: string;
  principalTokenFile?: string;
  intent?: string;
  scope?: string[];
  ttl?: string;
}

/** `lanyard session start`: a session SVID for the agent whose workload SVID is in --identity. */
function registerSessionStart(session: Command): void {
  serverCallCommand(
    session
      .command('start')
      .description(
        "start a task session with the agent's workload SVID; writes the session SVID, its key (0600) and the bundle to --out",
      ),
    "the agent's workload SVID",
    (c) =>
      c
        .requiredOption(
          '--out <dir>',
          'directory for the session svid.pem, svid_key.pem (0600) and bundle.pem',
        )
        .option('--principal <id>', 'the principal, asserted (only for entries with can_assert_principal)')
        .option(
          '--principal-token-file <file>',
          "file holding the principal's OIDC ID token or JWT access token",
        )
        .option('--intent <text>', 'short task intent (at most 256 bytes; never a prompt)')
        .option('--scope <scope...>', "requested scopes (granted: those the agent's entry allows)")
        .option(
          '--ttl <duration>',
          'session lifetime, e.g. 2h (default: one SVID lifetime; at most limits.max_session_ttl)',
        ),
  ).action(
    runAction(async (opts: StartOptions) => {
      if (opts.principal !== undefined && opts.principalTokenFile !== undefined) {
        throw usageError('--principal and --principal-token-file are exclusive');
      }
      const ttlSeconds = opts.ttl !== undefined ? parseDuration(opts.ttl, '--ttl') : undefined;
      const principal =
        opts.principalTokenFile !== undefined
          ? {
              evidence: {
                $case: 'token' as const,
                value: readInputFile(opts.principalTokenFile, 'principal token file').trim(),
              },
            }
          : opts.principal !== undefined
            ? { evidence: { $case: 'assertedId' as const, value: opts.principal } }
            : undefined;
      const started = await callServerAs(opts, (caller) =>
        startSession({
          ...caller,
          ...(principal !== undefined ? { principal } : {}),
          ...(opts.intent !== undefined ? { intent: opts.intent } : {}),
          ...(opts.scope !== undefined ? { scopes: opts.scope } : {}),
          ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
        }),
      );
      await saveObtainedIdentity(started, opts.out, opts, (files) => {
        const svid = started.getX509Svid();
        const r = {
          sessionId: started.sessionId,
          spiffeId: svid.id.toString(),
          scopes: svid.context?.scopes ?? [],
          svidNotAfter: isoSeconds(svid.notAfter),
          sessionExpiresAt: isoSeconds(started.sessionExpiresAt),
          files,
        };
        return {
          json: r,
          text: () =>
            `started session ${r.sessionId} for ${r.spiffeId}\n` +
            `  scopes ${r.scopes.join(' ') || '(none)'}; session ends ${r.sessionExpiresAt}, this SVID ${r.svidNotAfter}\n` +
            `  ${files.svid}\n  ${files.key} (mode 0600)\n  ${files.bundle}\n`,
        };
      });
    }),
  );
}

interface ShowOptions extends AdminConnectionOptions {
  agent?: string;
  root?: string;
  live?: boolean;
  limit?: string;
}

function sessionJson(s: Session): Record<string, unknown> {
  return {
    id: s.id,
    spiffeId: s.spiffeId,
    entryId: s.entryId,
    rootSessionId: s.rootSessionId,
    parentSessionId: s.parentSessionId === '' ? null : s.parentSessionId,
    principal: { id: s.principalId, issuer: s.principalIssuer, provenance: s.principalProvenance },
    intent: s.intent,
    scopes: s.scopes,
    depth: s.depth,
    depthLimit: s.depthLimit,
    createdAt: s.createdAt?.toISOString() ?? null,
    expiresAt: s.expiresAt?.toISOString() ?? null,
    endedAt: s.endedAt?.toISOString() ?? null,
    endReason: s.endReason === '' ? null : s.endReason,
    state: stateOf(s, new Date()),
    certSerials: s.certSerials,
  };
}

function stateOf(s: Session, now: Date): 'live' | 'ended' | 'expired' {
  if (s.endedAt !== undefined) return 'ended';
  if (s.expiresAt !== undefined && s.expiresAt.getTime() <= now.getTime()) return 'expired';
  return 'live';
}

function registerSessionQueries(session: Command): void {
  withAdminOptions(
    session
      .command('show')
      .description('one session as the server recorded it (exit 1 when it does not exist)')
      .argument('<sessionId>', 'the session id (s-…)'),
  ).action(
    runAction(async (sessionId: string, opts: AdminConnectionOptions) => {
      const { session: s } = await withAdminClient(opts, (c) => c.getSession({ sessionId }));
      if (s === undefined) throw new CliError(`the server answered without session ${sessionId}`);
      const j = sessionJson(s);
      const rows: [string, string][] = [
        ['ID', s.id],
        ['State', String(j.state) + (s.endReason !== '' ? ` (${s.endReason})` : '')],
        ['SPIFFE ID', s.spiffeId],
        ['Entry', s.entryId],
        ['Root session', s.rootSessionId],
        ['Parent session', s.parentSessionId || '(none: a root session)'],
        ['Principal', `${s.principalId} (issuer ${s.principalIssuer}, ${s.principalProvenance})`],
        ['Intent', s.intent === '' ? '(none)' : JSON.stringify(s.intent)],
        ['Scopes', s.scopes.join(' ') || '(none)'],
        ['Depth', `${s.depth} of at most ${s.depthLimit}`],
        ['Created', String(j.createdAt)],
        ['Expires', String(j.expiresAt)],
        ['Ended', j.endedAt === null ? '-' : String(j.endedAt)],
        ['SVIDs', s.certSerials.join(' ') || '(none)'],
      ];
      printResult(opts, j, () => renderFields(rows, 16));
    }),
  );
  withAdminOptions(
    session
      .command('list')
      .description('sessions, newest first')
      .option('--agent <spiffe-id>', "only this agent's sessions")
      .option('--root <sessionId>', 'only this chain: the root session and everything delegated from it')
      .option('--live', 'only sessions neither ended nor expired')
      .option('--limit <n>', 'at most this many (1-1000)', '100'),
  ).action(
    runAction(async (opts: ShowOptions) => {
      const limit = Number(opts.limit ?? '100');
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw usageError(`--limit ${opts.limit}: expected a whole number from 1 to 1000`);
      }
      if (opts.agent !== undefined) parseSpiffeIdFlag(opts.agent, '--agent');
      const { sessions } = await withAdminClient(opts, (c) =>
        c.listSessions({
          spiffeId: opts.agent ?? '',
          rootSessionId: opts.root ?? '',
          liveOnly: opts.live === true,
          limit,
        }),
      );
      const now = new Date();
      printResult(opts, sessions.map(sessionJson), () =>
        sessions.length === 0
          ? 'no sessions\n'
          : renderTable(
              ['SESSION', 'STATE', 'SPIFFE ID', 'PARENT', 'PRINCIPAL', 'EXPIRES', 'SCOPES'],
              sessions.map((s) => [
                s.id,
                stateOf(s, now),
                s.spiffeId,
                s.parentSessionId || '-',
                s.principalId,
                s.expiresAt !== undefined ? isoSeconds(s.expiresAt) : '-',
                s.scopes.join(' '),
              ]),
            ),
      );
    }),
  );
}
