import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { BundleError, ErrorCode, isLanyardError } from '../../errors';
import { X509Bundle, parseSpiffeBundle } from '../../bundle';
import {
  DEV_SVID_DEFAULT_TTL_SECONDS,
  loadDevCa,
  mintSvid,
  writeSvidFiles,
  type MintedSvid,
} from '../../ca/dev-ca';
import { SpiffeId, TrustDomain } from '../../spiffe';
import { ParsedCertificate } from '../../x509/certificate';
import {
  AGENT_CONTEXT_OID,
  agentContextFromJson,
  agentContextToJson,
  decodeAgentContext,
  encodeAgentContext,
  type AgentContext,
} from '../../x509/agent-context';
import { decodePemBlocks, encodePem } from '../../x509/pem';
import { status as Status } from '@grpc/grpc-js';
import { attestToServer, type AttestedSvid } from '../../client/attest';
import { verifyX509Svid } from '../../verify';
import { CliError, usageError } from '../cli-error';
import { EXIT_REJECTED } from '../exit-codes';
import { describeSvidText, isoSeconds } from '../format/svid-text';
import { parseDuration, parseIsoTime, readInputFile } from '../input';
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
    .option('--context <file>', 'agent context as JSON (see README); signed into the SVID')
    .option('--dns <name...>', 'DNS SANs in addition to the SPIFFE ID')
    .action(
      runAction(
        (opts: { ca: string; id: string; out: string; ttl: string; context?: string; dns?: string[] }) => {
          const ttlSeconds = parseDuration(opts.ttl, '--ttl');
          SpiffeId.parse(opts.id);
          const ca = loadDevCa(opts.ca);
          const contextDer =
            opts.context !== undefined
              ? encodeAgentContext(readContextFile(opts.context, ca.trustDomain))
              : undefined;
          const minted = mintSvid(ca, {
            spiffeId: opts.id,
            ttlSeconds,
            ...(contextDer ? { agentContextDer: contextDer } : {}),
            ...(opts.dns ? { dnsNames: opts.dns } : {}),
          });
          const files = writeSvidFiles(opts.out, minted);
          process.stdout.write(
            `minted ${opts.id} (serial ${minted.cert.serialHex}, until ${isoSeconds(minted.cert.notAfter)})\n` +
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
    .requiredOption('--server <host:port>', "the server's TLS listener, e.g. 127.0.0.1:8081")
    .requiredOption('--bundle <file>', 'trust bundle to bootstrap with (lanyard bundle show > bundle.pem)')
    .requiredOption('--out <dir>', 'directory for svid.pem, svid_key.pem and bundle.pem')
    .option('--join-token-file <file>', 'file holding the join token (keeps it out of the process list)')
    .option(
      '--join-token <token>',
      'the join token itself (visible to other local users in ps: prefer the file)',
    )
    .option('--spiffe-id <id>', 'when several entries match, the SPIFFE ID to get')
    .action(
      runAction(
        async (opts: {
          server: string;
          bundle: string;
          out: string;
          joinToken?: string;
          joinTokenFile?: string;
          spiffeId?: string;
        }) => {
          const token =
            opts.joinTokenFile !== undefined
              ? readInputFile(opts.joinTokenFile, 'join token file').trim()
              : (opts.joinToken ?? process.env.LANYARD_JOIN_TOKEN);
          if (token === undefined || token === '') {
            throw usageError('a join token is needed: --join-token-file, --join-token or LANYARD_JOIN_TOKEN');
          }
          const bundleText = readInputFile(opts.bundle, 'bundle');
          const trustDomain = trustDomainOfBundle(bundleText);
          const svid = await fetchWithJoinToken(
            opts.server,
            readBundle(trustDomain, bundleText),
            token,
            opts.spiffeId,
          );
          const files = writeSvidFiles(opts.out, svid);
          process.stdout.write(
            `got ${svid.cert.uriSans[0] ?? '?'} (serial ${svid.cert.serialHex}, until ${isoSeconds(svid.cert.notAfter)})\n` +
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
    .action(
      runAction((file: string, opts: { json?: boolean }) => {
        const chain = readChain(file);
        const leaf = chain[0]!;
        const context = contextOf(leaf);
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
    .option('--trust-domain <td>', 'trust domain of the bundle (default: that of the SVID)')
    .option('--at <time>', 'verify as of this ISO 8601 time (default now)')
    .option('--json', 'print JSON')
    .action(
      runAction(
        (opts: { chain: string; bundle: string; trustDomain?: string; at?: string; json?: boolean }) => {
          const at = opts.at !== undefined ? parseIsoTime(opts.at, '--at') : new Date();
          const chain = readChain(opts.chain);
          const bundleText = readInputFile(opts.bundle, 'bundle');
          try {
            const leafId = SpiffeId.parse(chain[0]!.uriSans[0] ?? '');
            const td = opts.trustDomain ?? leafId.trustDomain.name;
            const bundle = readBundle(td, bundleText);
            const result = verifyX509Svid(chain, bundle, { at, trustDomain: td });
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
  server: string,
  bundle: X509Bundle,
  token: string,
  spiffeId: string | undefined,
): Promise<MintedSvid> {
  let got: AttestedSvid;
  try {
    got = await attestToServer({
      server,
      bundle,
      attestorType: 'join_token',
      evidence: Buffer.from(token, 'utf8'),
      ...(spiffeId !== undefined ? { spiffeId } : {}),
    });
  } catch (e) {
    if (isServiceError(e))
      throw new CliError(`attestation refused: ${Status[e.code] ?? e.code}: ${e.details}`);
    throw e;
  }
  const chainPem = got.chain.map((d) => encodePem('CERTIFICATE', d)).join('');
  return {
    cert: ParsedCertificate.fromDer(got.chain[0]!),
    certPem: encodePem('CERTIFICATE', got.chain[0]!),
    keyPem: got.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    chainPem,
    bundlePem: got.bundle.toPem(),
  };
}

function isServiceError(e: unknown): e is { code: number; details: string } {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { code?: unknown }).code === 'number' &&
    'details' in e
  );
}

/** The trust domain named by the bundle's first CA (its URI SAN), or by the SPIFFE bundle's certificates. */
function trustDomainOfBundle(text: string): string {
  const pem = text.trimStart().startsWith('{') ? undefined : text;
  const ders =
    pem !== undefined
      ? decodePemBlocks(pem, 'CERTIFICATE')
      : ((JSON.parse(text) as { keys?: { x5c?: string[] }[] }).keys ?? []).flatMap((k) =>
          (k.x5c ?? []).slice(0, 1).map((b) => new Uint8Array(Buffer.from(b, 'base64'))),
        );
  for (const der of ders) {
    const uri = ParsedCertificate.fromDer(der).uriSans[0];
    if (uri !== undefined) return SpiffeId.parse(uri).trustDomain.name;
  }
  throw usageError('the bundle names no trust domain (no CA with a spiffe:// URI SAN)');
}

function readChain(file: string): ParsedCertificate[] {
  const text = readInputFile(file, 'certificate file');
  let ders: Uint8Array[];
  try {
    ders = decodePemBlocks(text, 'CERTIFICATE');
  } catch (e) {
    throw usageError(`${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return ders.map((der) => ParsedCertificate.fromDer(der));
}

/** A bundle file is either PEM certificates or a SPIFFE bundle document (JSON); the first byte tells which. */
function readBundle(trustDomainName: string, text: string): X509Bundle {
  const trustDomain = TrustDomain.parse(trustDomainName);
  if (text.trimStart().startsWith('{')) return parseSpiffeBundle(trustDomain, text);
  if (text.includes('-----BEGIN')) return X509Bundle.fromPem(trustDomain, text);
  throw new BundleError(ErrorCode.INVALID_BUNDLE, 'bundle file is neither PEM nor a SPIFFE bundle (JSON)');
}

function contextOf(cert: ParsedCertificate): AgentContext | undefined {
  const ext = cert.extension(AGENT_CONTEXT_OID);
  return ext ? decodeAgentContext(ext.value) : undefined;
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
