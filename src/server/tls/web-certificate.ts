/**
 * A Web PKI certificate and key from files, for the https_web listeners (the SPIFFE bundle endpoint, OIDC
 * discovery): checked when read (key 0600, the pair usable by TLS) and re-read when the files change, as an
 * ACME client renews them, while the old pair keeps serving until a new one loads.
 */
import * as fs from 'node:fs';
import * as https from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import { ConfigError, KeyFileInsecureError } from '../../errors';
import { fileAccess } from '../../internal/secure-file';
import type { Logger } from '../../internal/logging';

export interface WebCertificateFiles {
  certFile: string;
  keyFile: string;
  /** The config field the files come from, for error messages (e.g. `oidc_discovery`). */
  field: string;
}

/** @throws KeyFileInsecureError when the key is open to others; ConfigError when the pair is unusable. */
export function readWebCertificate(files: WebCertificateFiles): SecureContextOptions {
  const { certFile, keyFile, field } = files;
  // The same rule as for every other key file: readable by the server's user only.
  if (fileAccess(keyFile).openToOthers) {
    throw new KeyFileInsecureError(
      `${field}.key_file ${keyFile} is readable by group or others: chmod 600 it`,
    );
  }
  try {
    const cert = fs.readFileSync(certFile, 'utf8');
    const key = fs.readFileSync(keyFile, 'utf8');
    // Fails here, with the file named, rather than on the first handshake.
    https.createServer({ cert, key }).close();
    return { cert, key };
  } catch (e) {
    throw new ConfigError(
      `${field}: cannot use ${certFile} / ${keyFile}: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
}

/**
 * Polls the files every `intervalMs` and hands a changed, valid pair to `server`. A pair that does not load
 * is logged and tried again at the next change. Returns the stop function.
 */
export function watchWebCertificate(
  server: https.Server,
  files: WebCertificateFiles,
  opts: { intervalMs: number; logger: Logger },
): () => void {
  let stamp = fileStamp(files.certFile, files.keyFile);
  const timer = setInterval(() => {
    const now = fileStamp(files.certFile, files.keyFile);
    if (now === stamp) return;
    try {
      server.setSecureContext(readWebCertificate(files));
      stamp = now;
      opts.logger.info({ certFile: files.certFile }, `${files.field} certificate reloaded`);
    } catch (e) {
      opts.logger.error({ err: e, certFile: files.certFile }, `${files.field} certificate not reloaded`);
    }
  }, opts.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function fileStamp(...files: string[]): string {
  return files
    .map((f) => {
      try {
        const s = fs.statSync(f);
        return `${s.mtimeMs}:${s.size}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}
