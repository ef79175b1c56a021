import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import {
  ChallengeFailedError,
  ChallengeTimeoutError,
  ConfigError,
  InvalidArgumentError,
  KeyUsageInvalidError,
  MalformedEvidenceError,
} from '../errors';
import { validateCertPath } from '../verify/path-validation';
import { ParsedCertificate } from '../x509/certificate';
import { verifyWithKey } from '../x509/keys';
import { decodePem } from '../x509/pem';
import type { AttestationResult, Attestor, ChallengeChannel, Selector } from './attestor';
import { MAX_CHAIN_EVIDENCE_BYTES, parseChainEvidence } from './chain-evidence';
import { checkEvidenceSize, evidenceDigest } from './evidence';
import { X509POP_NONCE_BYTES, x509PopSignedMessage } from './x509pop-challenge';

export const X509POP_ATTESTOR = 'x509pop';
/** Selector type of the x509pop attestor, as SPIRE's: `x509pop:subject:cn:<cn>`, ... */
export const X509POP_SELECTOR_TYPE = 'x509pop';
/** How long the runtime has to answer the challenge: a signature takes milliseconds, the rest is the network. */
export const DEFAULT_X509POP_CHALLENGE_TIMEOUT_MS = 30_000;
/** An RSA-8192 signature is 1024 bytes; no accepted key makes a longer one. */
const MAX_RESPONSE_BYTES = 1024;

export interface X509PopOptions {
  challengeTimeoutMs?: number;
}

/**
 * x509pop: the runtime holds a key certified by a provisioning CA the operator configured (provisioned out of
 * band: a TPM-backed device certificate, a VM identity certificate, a cert from the organisation's PKI).
 *
 * 1. Evidence is the runtime's chain, leaf first. It must validate (RFC 5280, validateCertPath) to one of the
 *    provisioning roots at `now`; the leaf must not be a CA and must have keyUsage digitalSignature, since it
 *    is about to sign.
 * 2. The server sends a fresh 32-byte nonce from the CSPRNG. It exists only in this call: one stream, one
 *    nonce, one answer, and it is gone when attest() returns. An answer captured on another stream signs
 *    another nonce and fails; the wait is bounded (challengeTimeoutMs, ERR_CHALLENGE_TIMEOUT).
 * 3. The answer must verify with the leaf's public key over the domain-separated message of
 *    x509pop-challenge.ts (ERR_CHALLENGE_FAILED otherwise).
 *
 * Selectors (type `x509pop`), modelled on SPIRE's: `subject:cn:<CN>`, `serialnumber:<lower-case hex>`,
 * `san:uri:<URI>` and `san:dns:<name>` per SAN of the leaf, and `ca:fingerprint:<hex>` for every CA of the
 * validated path (intermediates and the root). SPIRE's fingerprints are SHA-1; these are SHA-256 of the DER,
 * as every certificate hash in Lanyard is.
 */
export class X509PopAttestor implements Attestor {
  readonly type = X509POP_ATTESTOR;
  private readonly roots: readonly ParsedCertificate[];
  private readonly challengeTimeoutMs: number;

  constructor(roots: readonly ParsedCertificate[], options: X509PopOptions = {}) {
    if (roots.length === 0) {
      throw new InvalidArgumentError('x509pop needs at least one provisioning CA');
    }
    this.roots = Object.freeze([...roots]);
    this.challengeTimeoutMs = options.challengeTimeoutMs ?? DEFAULT_X509POP_CHALLENGE_TIMEOUT_MS;
  }

  /** The provisioning CAs from a PEM file. @throws ConfigError naming the file. */
  static async fromFile(caBundleFile: string, options: X509PopOptions = {}): Promise<X509PopAttestor> {
    let roots: ParsedCertificate[];
    try {
      const blocks = decodePem(await fs.promises.readFile(caBundleFile, 'utf8'));
      if (blocks.some((b) => b.label.includes('PRIVATE KEY'))) {
        throw new Error('it contains a private key: a CA bundle holds certificates only');
      }
      roots = blocks.filter((b) => b.label === 'CERTIFICATE').map((b) => ParsedCertificate.fromDer(b.der));
      if (roots.length === 0) throw new Error('no CERTIFICATE PEM block found');
    } catch (e) {
      throw new ConfigError(
        `x509pop CA bundle ${caBundleFile}: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
    return new X509PopAttestor(roots, options);
  }

  async attest(evidence: Uint8Array, io: ChallengeChannel, now: Date): Promise<AttestationResult> {
    checkEvidenceSize(evidence, MAX_CHAIN_EVIDENCE_BYTES, 'certificate chain');
    const chain = parseChainEvidence(evidence);
    const { path } = validateCertPath(chain, this.roots, { at: now });
    const leaf = path[0]!;
    if (leaf.isCa) {
      throw new KeyUsageInvalidError(
        'the x509pop certificate is a CA certificate: attest with an end-entity certificate',
      );
    }
    if (leaf.keyUsage?.digitalSignature !== true) {
      throw new KeyUsageInvalidError(
        'the x509pop certificate lacks keyUsage digitalSignature, so its key may not sign the challenge',
      );
    }

    const nonce = new Uint8Array(randomBytes(X509POP_NONCE_BYTES));
    const response = await this.ask(io, nonce);
    if (response.length === 0 || response.length > MAX_RESPONSE_BYTES) {
      throw new MalformedEvidenceError(
        `challenge response is ${response.length} bytes: expected a signature of at most ${MAX_RESPONSE_BYTES}`,
      );
    }
    if (!verifyWithKey(x509PopSignedMessage(nonce), response, leaf.publicKey)) {
      throw new ChallengeFailedError(
        'challenge response is not a signature of this challenge by the certificate key: proof of possession failed',
      );
    }

    return {
      selectors: selectorsOf(path),
      evidenceSha256: evidenceDigest(evidence),
      agentIdHint: `${X509POP_ATTESTOR}/${leaf.sha256Hex}`,
      // The key stays with the runtime: it can prove possession again whenever it needs to.
      canReattest: true,
    };
  }

  /** One challenge, one answer, within the time limit. */
  private async ask(io: ChallengeChannel, nonce: Uint8Array): Promise<Uint8Array> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ChallengeTimeoutError(
              `no answer to the x509pop challenge within ${this.challengeTimeoutMs} ms`,
            ),
          ),
        this.challengeTimeoutMs,
      );
    });
    try {
      // A copy: nothing the channel does to the buffer it was given can change what we verify against.
      const response = await Promise.race([io.challenge(new Uint8Array(nonce)), timeout]);
      if (!(response instanceof Uint8Array)) {
        throw new MalformedEvidenceError('challenge response is not bytes');
      }
      return response;
    } finally {
      clearTimeout(timer);
    }
  }
}

function selectorsOf(path: readonly ParsedCertificate[]): Selector[] {
  const leaf = path[0]!;
  const values: string[] = [];
  for (const cn of leaf.subjectCommonNames) if (cn !== '') values.push(`subject:cn:${cn}`);
  values.push(`serialnumber:${leaf.serialHex}`);
  for (const uri of leaf.uriSans) values.push(`san:uri:${uri}`);
  for (const dns of leaf.dnsSans) values.push(`san:dns:${dns}`);
  for (const ca of path.slice(1)) values.push(`ca:fingerprint:${ca.sha256Hex}`);
  return values.map((value) => ({ type: X509POP_SELECTOR_TYPE, value }));
}
