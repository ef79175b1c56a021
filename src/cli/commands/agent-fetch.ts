/**
 * `lanyard agent fetch x509 | jwt | bundle`: what a workload gets from a Workload API socket (a Lanyard agent
 * or any SPIFFE agent), like spire-agent's `api fetch`. The socket is --socket, else SPIFFE_ENDPOINT_SOCKET.
 * Output is usable as it is: PEM (with `#` comment lines PEM readers skip), a bare token, or --json.
 */
import * as path from 'node:path';
import type { Command } from 'commander';
import { toSpiffeBundle, X509Bundle } from '../../bundle';
import { makeDir, writeFileAtomic } from '../../internal/secure-file';
import { fetchJwtBundles, fetchJwtSvids, fetchX509Bundles } from '../../client/workload-api-client';
import { WorkloadApiX509Source } from '../../client/workload-api-source';
import type { X509Svid } from '../../svid/x509-svid';
import { TrustDomain } from '../../spiffe';
import { agentContextToJson } from '../../x509/agent-context';
import { CliError, usageError } from '../cli-error';
import { isoSeconds } from '../format/svid-text';
import {
  AGENT_CONTEXT_OID_OPTION,
  agentContextOidFlag,
  parseDuration,
  parseSpiffeIdFlag,
  parseTrustDomainFlag,
} from '../input';
import { runAction } from '../run-action';
import { WORKLOAD_SOCKET_HELP, workloadSocketFlag } from '../workload-socket';

export function registerAgentFetchCommands(agent: Command): void {
  const fetch = agent
    .command('fetch')
    .description('read from a Workload API socket (--socket, else $SPIFFE_ENDPOINT_SOCKET)');
  registerFetchX509(fetch);
  registerFetchJwt(fetch);
  registerFetchBundle(fetch);
}

interface X509Opts {
  socket?: string;
  write?: string;
  spiffeId?: string;
  watch: boolean;
  json?: boolean;
  timeout: string;
  agentContextOid?: string;
}

function registerFetchX509(fetch: Command): void {
  fetch
    .command('x509')
    .description(
      'print the X.509-SVID (certificates, then its private key, as PEM; --json for JSON), or with --write ' +
        'write svid.pem, svid_key.pem (0600) and bundle.pem; --watch keeps the files fresh. Stdout holds the ' +
        'private key: redirect it to a private file, e.g. (umask 077; lanyard agent fetch x509 > svid.pem)',
    )
    .option('--socket <path>', WORKLOAD_SOCKET_HELP)
    .option('--write <dir>', 'directory for the files (created 0700 when missing)')
    .option('--spiffe-id <id>', 'which SVID, when the workload has several')
    .option('--watch', 'with --write: keep running and rewrite the files on every rotation', false)
    .option('--json', 'print JSON (spiffeId, validity, certificates, key, bundle, agent context)')
    .option('--timeout <duration>', 'how long to wait for the first SVID', '30s')
    .option(...AGENT_CONTEXT_OID_OPTION)
    .action(
      runAction(async (opts: X509Opts) => {
        if (opts.spiffeId !== undefined) parseSpiffeIdFlag(opts.spiffeId, '--spiffe-id');
        if (opts.watch && opts.write === undefined) throw usageError('--watch needs --write <dir>');
        const socketPath = workloadSocketFlag(opts.socket);
        const source = await WorkloadApiX509Source.connect({
          agentContextOid: agentContextOidFlag(opts.agentContextOid),
          socketPath,
          ...(opts.spiffeId !== undefined && { spiffeId: opts.spiffeId }),
          timeoutMs: parseDuration(opts.timeout, '--timeout') * 1000,
        });
        if (opts.write === undefined) {
          try {
            const svid = source.getX509Svid();
            const bundle = source.getX509BundleForTrustDomain(svid.id.trustDomain);
            process.stdout.write(opts.json === true ? x509Json(svid, bundle) : x509Pem(svid));
          } finally {
            await source.close();
          }
          return;
        }
        await writeX509Files(source, opts.write, opts.watch);
      }),
    );
}

/** The SVID as go-spiffe's Marshal writes it (chain, then key), under comment lines PEM readers skip. */
function x509Pem(svid: X509Svid): string {
  const pem = svid.marshal();
  const leaf = svid.chain[0]!;
  return (
    `# SPIFFE ID:  ${svid.id.toString()}\n` +
    `# Valid:      ${isoSeconds(leaf.notBefore)} to ${isoSeconds(leaf.notAfter)}\n` +
    `# Chain:      ${svid.chain.length} certificate(s), leaf first; then the private key (PKCS#8)\n` +
    pem.certificates +
    pem.key
  );
}

function x509Json(svid: X509Svid, bundle: X509Bundle | undefined): string {
  const pem = svid.marshal();
  const leaf = svid.chain[0]!;
  const doc = {
    spiffeId: svid.id.toString(),
    notBefore: leaf.notBefore.toISOString(),
    notAfter: leaf.notAfter.toISOString(),
    certificates: pem.certificates,
    key: pem.key,
    bundle: bundle?.toPem() ?? '',
    context: svid.context !== undefined ? agentContextToJson(svid.context) : null,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

async function writeX509Files(source: WorkloadApiX509Source, out: string, watch: boolean): Promise<void> {
  const dir = path.resolve(out);
  makeDir(dir, 0o700);
  const write = (): void => {
    const svid = source.getX509Svid();
    const bundle = source.getX509BundleForTrustDomain(svid.id.trustDomain);
    const pem = svid.marshal();
    // Key first: a reader that sees the new certificate finds its key already in place.
    writeFileAtomic(path.join(dir, 'svid_key.pem'), pem.key, 0o600);
    writeFileAtomic(path.join(dir, 'svid.pem'), pem.certificates, 0o644);
    writeFileAtomic(path.join(dir, 'bundle.pem'), bundle?.toPem() ?? '', 0o644);
    process.stdout.write(
      `${JSON.stringify({ spiffeId: svid.id.toString(), notAfter: svid.notAfter.toISOString(), dir })}\n`,
    );
  };
  write();
  if (!watch) {
    await source.close();
    return;
  }
  source.on('update', write);
  source.on('error', (e) => process.stderr.write(`lanyard: Workload API: ${e.message}\n`));
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      void source.close().then(resolve);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

function registerFetchJwt(fetch: Command): void {
  fetch
    .command('jwt')
    .description('print a JWT-SVID for the audience (the bare token; --json for every SVID with its claims)')
    .requiredOption('--audience <aud...>', 'audience(s) the token is for (aud claim)')
    .option('--socket <path>', WORKLOAD_SOCKET_HELP)
    .option('--spiffe-id <id>', 'which SVID, when the workload has several (default: the first)')
    .option('--json', 'print JSON')
    .option('--timeout <duration>', 'how long to wait for the agent', '30s')
    .action(
      runAction(
        async (opts: {
          audience: string[];
          socket?: string;
          spiffeId?: string;
          json?: boolean;
          timeout: string;
        }) => {
          if (opts.audience.some((a) => a.trim() === '')) throw usageError('--audience must not be empty');
          if (opts.spiffeId !== undefined) parseSpiffeIdFlag(opts.spiffeId, '--spiffe-id');
          const svids = await fetchJwtSvids({
            socketPath: workloadSocketFlag(opts.socket),
            audience: opts.audience,
            ...(opts.spiffeId !== undefined && { spiffeId: opts.spiffeId }),
            timeoutMs: parseDuration(opts.timeout, '--timeout') * 1000,
          });
          if (opts.json !== true) {
            process.stdout.write(`${svids[0]!.token}\n`);
            return;
          }
          const doc = {
            svids: svids.map((s) => ({
              spiffeId: s.id.toString(),
              token: s.token,
              audience: s.audience,
              expiresAt: s.expiresAt?.toISOString() ?? null,
              ...(s.hint !== '' && { hint: s.hint }),
            })),
          };
          process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
        },
      ),
    );
}

function registerFetchBundle(fetch: Command): void {
  fetch
    .command('bundle')
    .description(
      'print the trust bundle the Workload API gives this workload: PEM CA certificates, or --format jwks ' +
        'for the SPIFFE bundle document (X.509 and JWT authorities)',
    )
    .option('--socket <path>', WORKLOAD_SOCKET_HELP)
    .option('--format <format>', 'pem or jwks', 'pem')
    .option('--trust-domain <td>', 'whose bundle, when the Workload API sends several (federation)')
    .option('--timeout <duration>', 'how long to wait for the agent', '30s')
    .action(
      runAction(async (opts: { socket?: string; format: string; trustDomain?: string; timeout: string }) => {
        if (opts.format !== 'pem' && opts.format !== 'jwks') throw usageError('--format must be pem or jwks');
        const wanted =
          opts.trustDomain !== undefined
            ? parseTrustDomainFlag(opts.trustDomain, '--trust-domain')
            : undefined;
        const call = {
          socketPath: workloadSocketFlag(opts.socket),
          timeoutMs: parseDuration(opts.timeout, '--timeout') * 1000,
        };
        const x509 = pick(await fetchX509Bundles(call), wanted);
        if (opts.format === 'pem') {
          process.stdout.write(x509.toPem());
          return;
        }
        const jwt = (await fetchJwtBundles(call)).find((b) => b.trustDomain.equals(x509.trustDomain));
        const merged = new X509Bundle(x509.trustDomain, {
          x509Authorities: x509.x509Authorities,
          ...(jwt !== undefined && { jwtAuthorities: jwt.jwtAuthorities }),
        });
        process.stdout.write(`${JSON.stringify(toSpiffeBundle(merged), null, 2)}\n`);
      }),
    );
}

/**
 * The bundle of `wanted`, or the only one sent. Several without a choice is refused rather than printed
 * together: one PEM file of several trust domains' roots would let each vouch for the others' IDs.
 */
function pick(bundles: X509Bundle[], wanted: TrustDomain | undefined): X509Bundle {
  const names = bundles.map((b) => b.trustDomain.name).sort();
  if (wanted !== undefined) {
    const found = bundles.find((b) => b.trustDomain.equals(wanted));
    if (found === undefined) {
      throw new CliError(
        `the Workload API sent no bundle for ${wanted.name} (it sent: ${names.join(', ') || 'none'})`,
      );
    }
    return found;
  }
  if (bundles.length === 1) return bundles[0]!;
  if (bundles.length === 0) throw new CliError('the Workload API sent no bundle');
  throw usageError(
    `the Workload API sent bundles of several trust domains (${names.join(', ')}): pass --trust-domain`,
  );
}
