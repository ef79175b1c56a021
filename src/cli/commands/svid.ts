import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { isLanyardError } from '../../errors';
import type { X509Bundle } from '../../bundle';
import {
  CA_CERT_FILE,
  DEV_SVID_DEFAULT_TTL_SECONDS,
  devCaBundle,
  loadDevCa,
  mintSvid,
  writeSvidFiles,
} from '../../ca/dev-ca';
import { ParsedCertificate } from '../../x509/certificate';
import {
  agentContextFromJson,
  agentContextToJson,
  encodeAgentContext,
  readAgentContext,
  type AgentContext,
} from '../../x509/agent-context';
import { decodePemBlocks } from '../../x509/pem';
import { status as Status } from '@grpc/grpc-js';
import { attestToServer, type AttestResult } from '../../client/attest';
import { checkServerTrust } from '../../client/server-credentials';
import type { ServerEndpoints } from '../../client/server-endpoints';
import { verifyX509Svid } from '../../verify';
import { CliError, usageError } from '../cli-error';
import { EXIT_REJECTED } from '../exit-codes';
import { describeSvidText, isoSeconds } from '../format/svid-text';
import { readBundleFile } from '../bundle-file';
import {
  AGENT_CONTEXT_OID_OPTION,
  agentContextOidFlag,
  parseDuration,
  parseIsoTime,
  parseSpiffeIdFlag,
  parseTrustDomainFlag,
  readInputFile,
  SERVER_OPTION,
  serverAddressesFlag,
} from '../input';
import { runAction } from '../run-action';
import { registerSvidRevokeCommand } from './session';

/** `lanyard svid ...`: mint (dev CA), inspect and verify X.509-SVIDs. */
export function registerSvidCommands(program: Command): void {
  const svid = program.command('svid').description('mint, inspect and verify X.509-SVIDs');

  svid
    .command('mint')
    .description(
      'mint an SVID from a dev CA (the workload key is generated locally): svid.pem, svid_key.pem, bundle.pem',
    )
    .requiredOption('--ca <dir>', 'dev CA directory (lanyard ca init)')
    .requiredOption('--id <spiffe-id>', 'SPIFFE ID of the workload')
    .requiredOption('--out <dir>', 'directory for svid.pem, svid_key.pem (0600) and bundle.pem')
    .option('--ttl <duration>', 'SVID lifetime, capped by the CA', `${DEV_SVID_DEFAULT_TTL_SECONDS}s`)
    .option('--context <file>', 'agent context as JSON (docs/library/verifier.md); signed into the SVID')
    .option('--dns <name...>', 'DNS SANs in addition to the SPIFFE ID')
    .option(...AGENT_CONTEXT_OID_OPTION)
    .action(
      runAction(
        (opts: {
          ca: string;
          id: string;
          out: string;
          ttl: string;
          context?: string;
          dns?: string[];
          agentContextOid?: string;
        }) => {
          const agentContextOid = agentContextOidFlag(opts.agentContextOid);
          const ttlSeconds = parseDuration(opts.ttl, '--ttl');
          parseSpiffeIdFlag(opts.id, '--id');
          requireDevCaDir(opts.ca);
          const ca = loadDevCa(opts.ca);
          const contextDer =
            opts.context !== undefined
              ? encodeAgentContext(readContextFile(opts.context, ca.trustDomain))
              : undefined;
          const minted = mintSvid(ca, {
            spiffeId: opts.id,
            ttlSeconds,
            ...(contextDer ? { agentContextDer: contextDer, agentContextOid } : {}),
            ...(opts.dns ? { dnsNames: opts.dns } : {}),
          });
          const files = writeSvidFiles(opts.out, minted, devCaBundle(ca));
          process.stdout.write(
            `minted ${opts.id} (serial ${minted.chain[0]!.serialHex}, until ${isoSeconds(minted.notAfter)})\n` +
              `  ${files.svid}\n  ${files.key} (mode 0600)\n  ${files.bundle}\n`,
          );
        },
      ),
    );

  svid
    .command('fetch')
    .description(
      'attest to a Lanyard server with a join token and write svid.pem, svid_key.pem (0600), bundle.pem; the key is generated here',
    )
    .option(...SERVER_OPTION)
    .requiredOption('--bundle <file>', 'trust bundle to bootstrap with (lanyard bundle show > bundle.pem)')
    .requiredOption('--out <dir>', 'directory for svid.pem, svid_key.pem and bundle.pem')
    .option(
      '--trust-domain <td>',
      "the server's trust domain (default: the one the bundle's CAs name; needed when they name none, as an organisation root does)",
    )
    .option('--join-token-file <file>', 'file holding the join token (keeps it out of the process list)')
    .option(
      '--join-token <token>',
      'the join token itself (visible to other local users in ps: prefer the file)',
    )
    .option('--spiffe-id <id>', 'when several entries match, the SPIFFE ID to get')
    .option(...AGENT_CONTEXT_OID_OPTION)
    .action(
      runAction(
        async (opts: {
          server?: string[];
          bundle: string;
          out: string;
          trustDomain?: string;
          joinToken?: string;
          joinTokenFile?: string;
          spiffeId?: string;
          agentContextOid?: string;
        }) => {
          const agentContextOid = agentContextOidFlag(opts.agentContextOid);
          const servers = serverAddressesFlag(opts.server);
          const trustDomain =
            opts.trustDomain !== undefined
              ? parseTrustDomainFlag(opts.trustDomain, '--trust-domain')
              : undefined;
          const token =
            opts.joinTokenFile !== undefined
              ? readInputFile(opts.joinTokenFile, 'join token file').trim()
              : (opts.joinToken ?? process.env.LANYARD_JOIN_TOKEN);
          if (token === undefined || token === '') {
            throw usageError('a join token is needed: --join-token-file, --join-token or LANYARD_JOIN_TOKEN');
          }
          const bundle = readBundleFile(readInputFile(opts.bundle, 'bundle'), trustDomain);
          // An SVID whose context this side would not read (another OID) is refused before anything is written.
          const got = await fetchWithJoinToken(servers, bundle, token, opts.spiffeId, agentContextOid);
          const { svid } = got;
          const files = writeSvidFiles(opts.out, svid, got.bundle);
          process.stdout.write(
            `got ${svid.id.toString()} (serial ${svid.chain[0]!.serialHex}, until ${isoSeconds(svid.notAfter)})\n` +
              `  ${files.svid}\n  ${files.key} (mode 0600)\n  ${files.bundle}\n`,
          );
        },
      ),
    );

  svid
    .command('inspect')
    .description(
      'print the SPIFFE ID, validity and agent context of the first certificate in a PEM file (no verification)',
    )
    .argument('<file>', 'PEM file: the SVID first, then any intermediates')
    .option('--json', 'print JSON')
    .option(...AGENT_CONTEXT_OID_OPTION)
    .action(
      runAction((file: string, opts: { json?: boolean; agentContextOid?: string }) => {
        const agentContextOid = agentContextOidFlag(opts.agentContextOid);
        const chain = readChain(file);
        const leaf = chain[0]!;
        const context = readAgentContext(leaf, agentContextOid);
        if (opts.json === true) {
          printJson({
            ...certificateJson(leaf),
            chainLength: chain.length,
            context: context ? agentContextToJson(context) : null,
          });
        } else {
          process.stdout.write(describeSvidText(leaf, context, new Date()));
          if (chain.length > 1)
            process.stdout.write(`(${chain.length - 1} more certificate(s) in ${file})\n`);
        }
      }),
    );

  svid
    .command('verify')
    .description(
      'verify an SVID chain against a bundle: exit 0 when valid, 1 when rejected, 2 on usage errors',
    )
    .requiredOption('--chain <file>', 'PEM file: the SVID first, then any intermediates')
    .requiredOption('--bundle <file>', 'trust bundle: PEM certificates or a SPIFFE bundle (JWKS)')
    .option(
      '--trust-domain <td>',
      "trust domain of the bundle (default: the one its CA certificates name; never the SVID's own claim)",
    )
    .option('--at <time>', 'verify as of this ISO 8601 time (default now)')
    .option('--json', 'print JSON')
    .option(...AGENT_CONTEXT_OID_OPTION)
    .action(
      runAction(
        (opts: {
          chain: string;
          bundle: string;
          trustDomain?: string;
          at?: string;
          json?: boolean;
          agentContextOid?: string;
        }) => {
          const agentContextOid = agentContextOidFlag(opts.agentContextOid);
          const at = opts.at !== undefined ? parseIsoTime(opts.at, '--at') : new Date();
          const trustDomain =
            opts.trustDomain !== undefined
              ? parseTrustDomainFlag(opts.trustDomain, '--trust-domain')
              : undefined;
          const chainText = readInputFile(opts.chain, 'certificate file');
          const bundleText = readInputFile(opts.bundle, 'bundle');
          try {
            // Inside the try: a certificate that is not DER is a rejection, reported like any other.
            const chain = parseChain(opts.chain, chainText);
            const bundle = readBundleFile(bundleText, trustDomain);
            const result = verifyX509Svid(chain, bundle, {
              at,
              trustDomain: bundle.trustDomain,
              agentContextOid,
            });
            if (opts.json === true) {
              printJson({
                valid: true,
                id: result.id.toString(),
                ...certificateJson(chain[0]!),
                context: result.context ? agentContextToJson(result.context) : null,
              });
            } else {
              process.stdout.write(
                `OK: ${result.id.toString()} is a valid X.509-SVID as of ${isoSeconds(at)}\n`,
              );
              process.stdout.write(describeSvidText(chain[0]!, result.context, at));
            }
          } catch (e) {
            if (!isLanyardError(e)) throw e;
            if (opts.json === true) printJson({ valid: false, code: e.code, message: e.message });
            else process.stdout.write(`REJECTED: ${e.code}: ${e.message}\n`);
            throw new CliError('', EXIT_REJECTED);
          }
        },
      ),
    );
  registerSvidRevokeCommand(svid);
}

async function fetchWithJoinToken(
  servers: ServerEndpoints,
  bundle: X509Bundle,
  token: string,
  spiffeId: string | undefined,
  agentContextOid: string,
): Promise<AttestResult> {
  const unanswered: string[] = [];
  try {
    // Only a server that did not answer is left for the next: a refused token is never offered to another.
    return await servers.call(
      (server) =>
        attestToServer({
          server,
          bundle,
          attestorType: 'join_token',
          evidence: Buffer.from(token, 'utf8'),
          ...(spiffeId !== undefined ? { spiffeId } : {}),
          agentContextOid,
        }),
      {
        onFailover: (address, e, next) => {
          unanswered.push(`${address}: ${isServiceError(e) ? e.details : e.message}`);
          if (next !== undefined)
            process.stderr.write(`lanyard: no answer from ${address}; trying ${next}\n`);
        },
      },
    );
  } catch (e) {
    if (isServiceError(e) && e.code === Status.UNAVAILABLE) {
      const all = await servers.addresses().catch(() => []);
      if (all.length === 1) throw await whyUnavailable(all[0]!, bundle, e);
      throw new CliError(`no Lanyard server answered: ${unanswered.join('; ') || e.details}`);
    }
    if (isServiceError(e))
      throw new CliError(`attestation refused: ${Status[e.code] ?? e.code}: ${e.details}`);
    throw e;
  }
}

/**
 * UNAVAILABLE covers both "nobody listens there" and "the server's certificate did not verify": tell them
 * apart with one TLS handshake judged by the same verifier, so the user learns which file or address is wrong.
 */
async function whyUnavailable(
  server: string,
  bundle: X509Bundle,
  e: { code: number; details: string },
): Promise<CliError> {
  try {
    await checkServerTrust(server, bundle);
  } catch (probe) {
    if (isLanyardError(probe)) {
      return new CliError(
        `${probe.code}: the server at ${server} presented a certificate the --bundle does not vouch for ` +
          `(trust domain ${bundle.trustDomain.name}): ${probe.message}; get the bundle from that server ` +
          '(lanyard bundle show) or point --server at the server the bundle is for',
      );
    }
    const reason = (probe as NodeJS.ErrnoException).code ?? (probe as Error).message;
    return new CliError(`cannot reach the Lanyard server at ${server}: ${reason}`);
  }
  return new CliError(`attestation failed: the server at ${server} is unavailable: ${e.details}`);
}

function isServiceError(e: unknown): e is { code: number; details: string } {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { code?: unknown }).code === 'number' &&
    'details' in e
  );
}

function readChain(file: string): ParsedCertificate[] {
  return parseChain(file, readInputFile(file, 'certificate file'));
}

/** Text that is not PEM is a usage error; a CERTIFICATE block that is not a certificate is a typed error. */
function parseChain(file: string, text: string): ParsedCertificate[] {
  let ders: Uint8Array[];
  try {
    ders = decodePemBlocks(text, 'CERTIFICATE');
  } catch (e) {
    throw usageError(`${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return ders.map((der) => ParsedCertificate.fromDer(der));
}

/** The dev CA directory must exist and hold ca.pem: naming the wrong directory is a usage error (exit 2). */
function requireDevCaDir(dir: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw usageError(`--ca ${dir}: no such directory`);
  if (!existsSync(join(dir, CA_CERT_FILE)))
    throw usageError(`--ca ${dir}: no ${CA_CERT_FILE} there (lanyard ca init)`);
}

function certificateJson(cert: ParsedCertificate): Record<string, unknown> {
  return {
    spiffeId: cert.uriSans[0] ?? null,
    dnsNames: cert.dnsSans,
    serial: cert.serialHex,
    notBefore: isoSeconds(cert.notBefore),
    notAfter: isoSeconds(cert.notAfter),
    sha256: cert.sha256Hex,
  };
}

/**
 * Reads a --context file. Fields a dev mint can fill in sensibly may be left out: version (1), rootSessionId
 * (= sessionId), intent (""), scopes ([]), policyVersion ("dev"), delegation ([]), and provenance (method
 * "dev-mint", the SHA-256 of the file as evidence, the dev CA as issuer, now).
 */
function readContextFile(file: string, trustDomain: string): AgentContext {
  const text = readInputFile(file, 'context file');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw usageError(`${file} is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw usageError(`${file} must hold a JSON object`);
  const given = raw as Record<string, unknown>;
  const withDefaults = {
    version: 1,
    rootSessionId: given.sessionId,
    intent: '',
    scopes: [],
    policyVersion: 'dev',
    delegation: [],
    provenance: {
      method: 'dev-mint',
      evidenceSha256: createHash('sha256').update(text).digest('hex'),
      issuer: `spiffe://${trustDomain}/lanyard/dev-ca`,
      issuedAt: new Date(Math.floor(Date.now() / 1000) * 1000).toISOString(),
    },
    ...given,
  };
  return agentContextFromJson(withDefaults);
}

function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}
