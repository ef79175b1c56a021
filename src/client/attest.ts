import { federatedBundlesFromProto } from './federated-bundles';
import * as grpc from '@grpc/grpc-js';
import { X509Bundle } from '../bundle';
import { InternalError, InvalidArgumentError } from '../errors';
import {
  AttestationServiceClient,
  type AttestParams,
  type AttestResponse,
  type AttestResult as AttestResultMessage,
} from '../gen/lanyard/v1/attestation';
import { TrustDomain } from '../spiffe';
import { toX509Svid, type X509Svid } from '../svid/x509-svid';
import { resolveAgentContextOid } from '../x509/agent-context/oid';
import { createCsr } from '../x509/csr';
import { generateSigningKeyPair, type KeyAlgorithm } from '../x509/keys';
import { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials } from './server-credentials';

export interface AttestOptions {
  /** host:port of the server's TLS listener. */
  server: string;
  /** The trust bundle the client bootstraps with (e.g. from `lanyard bundle show`). */
  bundle: X509Bundle;
  attestorType: string;
  evidence: Uint8Array;
  /** Answers an attestor's challenge (x509pop); without it a challenge fails the attestation. */
  answerChallenge?: (challenge: Uint8Array) => Uint8Array;
  /** When several entries match: the SPIFFE ID to get. */
  spiffeId?: string;
  keyAlgorithm?: KeyAlgorithm;
  deadlineMs?: number;
  /**
   * OID of the agent-context extension: the server's `agent_context.oid`. Default 1.3.6.1.4.1.262144.1.1. An SVID
   * whose context sits under another OID is refused (AgentContextOidMismatchError), never returned.
   */
  agentContextOid?: string;
}

/** What an attestation yields: the SVID, and the bundles that came with it. */
export interface AttestResult {
  /** Its key was generated here and never sent anywhere. */
  readonly svid: X509Svid;
  /** The trust domain's bundle as the server has it now. */
  readonly bundle: X509Bundle;
  /** The bundles of the trust domains the entry federates with. */
  readonly federatedBundles: readonly X509Bundle[];
}

/**
 * Attest to a Lanyard server and get an SVID: the key is generated here and only a CSR leaves the process.
 * Rejects with the server's gRPC error (status code and message) when attestation is refused; with
 * AgentContextOidMismatchError when the SVID carries its agent context under another OID than `agentContextOid`,
 * and with the errors of toX509Svid for an SVID that breaks the X509-SVID profile.
 */
export async function attestToServer(opts: AttestOptions): Promise<AttestResult> {
  // Checked first: a malformed OID must not cost a single-use join token.
  const agentContextOid = resolveAgentContextOid(opts.agentContextOid);
  const { privateKey } = generateSigningKeyPair(opts.keyAlgorithm ?? 'ec-p256');
  const csr = Buffer.from(createCsr(privateKey).der);
  const client = new AttestationServiceClient(
    opts.server,
    lanyardChannelCredentials(opts.bundle),
    LANYARD_CHANNEL_OPTIONS,
  );
  try {
    const result = await runAttestStream(client, {
      params: {
        attestorType: opts.attestorType,
        evidence: Buffer.from(opts.evidence),
        csr,
        spiffeId: opts.spiffeId ?? '',
      },
      ...(opts.answerChallenge !== undefined ? { answerChallenge: opts.answerChallenge } : {}),
      ...(opts.deadlineMs !== undefined ? { deadlineMs: opts.deadlineMs } : {}),
    });
    const svid = result.svid;
    if (svid === undefined || svid.certChain.length === 0 || result.bundle === undefined) {
      throw new InternalError('the server answered without an SVID or bundle');
    }
    // Held to the X509-SVID profile, its context read under the server's OID (else AgentContextOidMismatchError).
    const x509Svid = toX509Svid(
      svid.certChain.map((b) => new Uint8Array(b)),
      privateKey,
      { agentContextOid },
    );
    const bundle = X509Bundle.fromDer(
      TrustDomain.parse(result.bundle.trustDomain || opts.bundle.trustDomain.name),
      result.bundle.x509Authorities.map((b) => new Uint8Array(b)),
    );
    return {
      svid: x509Svid,
      bundle,
      federatedBundles: federatedBundlesFromProto(result.federatedBundles, bundle.trustDomain),
    };
  } finally {
    client.close();
  }
}

export interface AttestStreamOptions {
  /** Sent as they are: the caller made the CSR (and owns its key). */
  params: AttestParams;
  /** Answers an attestor's challenge (x509pop); without it a challenge fails the attestation. */
  answerChallenge?: (challenge: Uint8Array) => Uint8Array;
  /** Default 30 s. */
  deadlineMs?: number;
}

/**
 * One Attest stream on a client the caller holds (its own channel, credentials and key): params, then at most
 * one challenge answered. Resolves with the raw result; rejects with the server's gRPC error.
 */
export function runAttestStream(
  client: AttestationServiceClient,
  opts: AttestStreamOptions,
): Promise<AttestResultMessage> {
  const { attestorType } = opts.params;
  return new Promise((resolve, reject) => {
    const call = client.attest({ deadline: Date.now() + (opts.deadlineMs ?? 30_000) });
    let result: AttestResultMessage | undefined;
    call.on('data', (res: AttestResponse) => {
      if (res.step?.$case === 'challenge') {
        if (opts.answerChallenge === undefined) {
          call.cancel();
          reject(new InvalidArgumentError(`attestor ${attestorType} sent a challenge`));
          return;
        }
        const answer = opts.answerChallenge(new Uint8Array(res.step.value.challenge));
        call.write({ step: { $case: 'challengeResponse', value: Buffer.from(answer) } });
        call.end();
      } else if (res.step?.$case === 'result') {
        result = res.step.value;
      }
    });
    call.on('error', (e: grpc.ServiceError) => reject(e));
    call.on('end', () =>
      result !== undefined
        ? resolve(result)
        : reject(new Error('the attestation stream ended without a result')),
    );
    call.write({ step: { $case: 'params', value: opts.params } });
    if (opts.answerChallenge === undefined) call.end();
  });
}
