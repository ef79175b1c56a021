/**
 * `lanyard ca rotate` and `lanyard ca show`: the running server's CA, over its admin socket. (The other
 * `ca` subcommand, `init`, makes a development CA on disk and never talks to a server.)
 */
import type { Command } from 'commander';
import {
  type CaAuthority,
  CaAuthorityState,
  CaRotationStep,
  type GetCaResponse,
  type RotateCaResponse,
} from '../../gen/lanyard/v1/admin';
import type { Bundle } from '../../gen/lanyard/v1/types';
import { usageError } from '../cli-error';
import { runAction } from '../run-action';
import { printResult, renderTable } from '../output';
import { type AdminConnectionOptions, withAdminClient, withAdminOptions } from './server-admin';

export function registerCaServerCommands(ca: Command): void {
  withAdminOptions(
    ca
      .command('rotate')
      .description(
        "one manual rotation step of the server's CA: prepare the next CA (its root joins the bundle), " +
          'or activate the prepared one. Default: prepare when nothing is prepared, else activate',
      )
      .option('--prepare', 'make the next CA now (replaces a CA already prepared)')
      .option('--activate', 'switch signing to the prepared CA now (fails when none is prepared)'),
  ).action(
    runAction(async (opts: AdminConnectionOptions & { prepare?: boolean; activate?: boolean }) => {
      if (opts.prepare && opts.activate) throw usageError('--prepare and --activate exclude each other');
      const step = opts.prepare
        ? CaRotationStep.CA_ROTATION_STEP_PREPARE
        : opts.activate
          ? CaRotationStep.CA_ROTATION_STEP_ACTIVATE
          : CaRotationStep.CA_ROTATION_STEP_UNSPECIFIED;
      const res = await withAdminClient(opts, (c) => c.rotateCa({ step }));
      printResult(opts, rotateToJson(res), () => rotateText(res));
    }),
  );

  withAdminOptions(
    ca
      .command('show')
      .description("the server's CAs (prepared, active, old) with their validity, and the bundle sequence"),
  ).action(
    runAction(async (opts: AdminConnectionOptions) => {
      const res = await withAdminClient(opts, (c) => c.getCa());
      printResult(opts, showToJson(res), () => showText(res));
    }),
  );
}

const STATE_NAMES: Partial<Record<CaAuthorityState, string>> = {
  [CaAuthorityState.CA_AUTHORITY_STATE_PREPARED]: 'prepared',
  [CaAuthorityState.CA_AUTHORITY_STATE_ACTIVE]: 'active',
  [CaAuthorityState.CA_AUTHORITY_STATE_OLD]: 'old',
};

function stateName(s: CaAuthorityState): string {
  return STATE_NAMES[s] ?? `unknown(${s})`;
}

function iso(d: Date | undefined): string | null {
  return d?.toISOString() ?? null;
}

/** Every field, always present (null when unset), so scripts can rely on the shape. The DER stays out. */
function authorityToJson(a: CaAuthority): Record<string, unknown> {
  return {
    id: a.id,
    state: stateName(a.state),
    notBefore: iso(a.notBefore),
    notAfter: iso(a.notAfter),
    createdAt: iso(a.createdAt),
    activatedAt: iso(a.activatedAt),
    selfSigned: a.selfSigned,
    sha256: a.sha256Hex,
  };
}

function bundleSummary(b: Bundle | undefined): Record<string, unknown> {
  return {
    trustDomain: b?.trustDomain ?? null,
    sequence: b?.sequence ?? null,
    roots: b?.x509Authorities.length ?? 0,
  };
}

function rotateToJson(res: RotateCaResponse): Record<string, unknown> {
  return {
    step: res.step === CaRotationStep.CA_ROTATION_STEP_PREPARE ? 'prepare' : 'activate',
    authority: res.authority ? authorityToJson(res.authority) : null,
    authorities: res.authorities.map(authorityToJson),
    bundle: bundleSummary(res.bundle),
  };
}

function showToJson(res: GetCaResponse): Record<string, unknown> {
  return {
    authorities: res.authorities.map(authorityToJson),
    bundle: bundleSummary(res.bundle),
    nextCheckAt: iso(res.nextCheckAt),
  };
}

function authoritiesTable(authorities: CaAuthority[]): string {
  return renderTable(
    ['ID', 'STATE', 'NOT BEFORE', 'NOT AFTER', 'ACTIVATED', 'SHA-256'],
    authorities.map((a) => [
      a.id,
      stateName(a.state),
      iso(a.notBefore) ?? '',
      iso(a.notAfter) ?? '',
      iso(a.activatedAt) ?? '-',
      // A prefix is enough to tell CAs apart at a glance; --json has the whole hash.
      `${a.sha256Hex.slice(0, 16)}…`,
    ]),
  );
}

function bundleLine(b: Bundle | undefined): string {
  if (!b) return 'bundle: (none)\n';
  return `bundle of ${b.trustDomain}: sequence ${b.sequence}, ${b.x509Authorities.length} root(s)\n`;
}

function rotateText(res: RotateCaResponse): string {
  const a = res.authority;
  const what =
    res.step === CaRotationStep.CA_ROTATION_STEP_PREPARE
      ? `prepared CA ${a?.id ?? '?'}: its root is in the bundle; activate it with \`lanyard ca rotate --activate\``
      : `activated CA ${a?.id ?? '?'}: new SVIDs are signed by it; the previous CA stays in the bundle until it expires`;
  return `${what}\n${bundleLine(res.bundle)}\n${authoritiesTable(res.authorities)}`;
}

function showText(res: GetCaResponse): string {
  const next = iso(res.nextCheckAt);
  return (
    authoritiesTable(res.authorities) +
    '\n' +
    bundleLine(res.bundle) +
    (next ? `next automatic rotation check: ${next}\n` : '')
  );
}
