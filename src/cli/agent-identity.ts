/**
 * What the agent-side session and grant commands share: the identity they call the server with (a directory
 * as `svid fetch` / `session start` / `grant redeem` write it: svid.pem, svid_key.pem, bundle.pem), writing a
 * session SVID the same way, and the server's refusals as exit codes.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_FILE, SVID_FILE, SVID_KEY_FILE, writeSvidFiles, type SvidFiles } from '../ca/dev-ca';
import { StaticX509Source } from '../client/static-x509-source';
import type { X509Source } from '../client/x509-source';
import { isLanyardError } from '../errors';
import { grpcStatusOf, GrpcStatus } from '../internal/grpc-status-map';
import { CliError, usageError } from './cli-error';
import { EXIT_REJECTED, EXIT_USAGE } from './exit-codes';

export const IDENTITY_HELP =
  'directory holding svid.pem, svid_key.pem and bundle.pem (as `svid fetch --out`, `session start --out` and `grant redeem --out` write them)';

/** Loads an identity directory; a missing directory or file is a usage error (exit 2). */
export function loadIdentityDir(dir: string, flag = '--identity'): StaticX509Source {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw usageError(`${flag} ${dir}: no such directory`);
  for (const f of [SVID_FILE, SVID_KEY_FILE, BUNDLE_FILE]) {
    if (!existsSync(join(dir, f))) throw usageError(`${flag} ${dir}: no ${f} there`);
  }
  return StaticX509Source.fromFiles({
    certFile: join(dir, SVID_FILE),
    keyFile: join(dir, SVID_KEY_FILE),
    bundleFile: join(dir, BUNDLE_FILE),
  });
}

/** Writes the source's current SVID (chain, key 0600) and its trust domain's bundle to `dir`. */
export function writeIdentityDir(dir: string, source: X509Source): SvidFiles {
  const svid = source.getX509Svid();
  const bundle = source.getX509BundleForTrustDomain(svid.id.trustDomain);
  if (bundle === undefined) throw new CliError(`no bundle for ${svid.id.trustDomain.name} to write`);
  return writeSvidFiles(dir, svid, bundle);
}

/**
 * Runs a call to the server's public listener: a refusal with INVALID_ARGUMENT is exit 2 (the command was not
 * runnable as asked), every other refusal exit 1, each with its stable code; an unreachable server says so.
 */
export async function callServer<T>(server: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isLanyardError(e)) {
      throw new CliError(
        `${e.code}: ${e.message}`,
        grpcStatusOf(e) === GrpcStatus.INVALID_ARGUMENT ? EXIT_USAGE : EXIT_REJECTED,
      );
    }
    const details = (e as { details?: unknown }).details;
    if (typeof details === 'string') {
      throw new CliError(`the server at ${server} failed the call: ${details}`, EXIT_REJECTED);
    }
    throw e;
  }
}
