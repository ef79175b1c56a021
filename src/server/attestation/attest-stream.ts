/**
 * One Attest stream: AttestParams first, then as many challenge/challenge_response rounds as the attestor
 * asks for, then exactly one AttestResult or an error status.
 *
 * Order of checks, cheapest and stateless first: the CSR (proof of possession of the new key), the
 * attestor type, then the evidence. State changes happen in one transaction at the end: for join_token the
 * token is spent in the same transaction that matches the entry and signs the SVID, so a refusal after the
 * token check (CA not ready, a bad CSR) leaves the token unspent — except when the entry the token is bound
 * to is gone or changed: that token can never succeed, and it is spent so it never can. x509pop never holds a transaction while
 * it waits for the runtime's answer: a slow client would block every other writer.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Attestors, AttestationResult } from '../../attest';
import { JOIN_TOKEN_ATTESTOR, JOIN_TOKEN_SELECTOR_TYPE, StreamChallengeChannel } from '../../attest';
import type { CaManager, SignedX509Svid } from '../../ca';
import { InvalidArgumentError, isLanyardError, LanyardError, NoMatchingEntryError } from '../../errors';
import { GrpcStatus, grpcStatusOf } from '../../internal/grpc-status-map';
import type { AttestParams, AttestRequest, AttestResponse } from '../../gen/lanyard/v1/attestation';
import { sharedTransaction, type Store, type StoreOps } from '../../store/store';
import type { Entry } from '../../store/types';
import { toStatus } from '../../internal/grpc-call';
import { attestAuditOf, type AttestTransactionalAudit } from '../audit/in-transaction';
import type { Logger } from '../../internal/logging';
import { bundleToProto } from '../bundle/to-proto';
import { isBound, matchEntry } from './entry-match';
import { issueWorkloadSvid, svidToProto } from '../issuance/workload-svid';
import { newWorkloadContext, wholeSeconds } from '../issuance/workload-context';
import type { IssuancePolicySource } from '../../policy';
import type { AttestResult } from '../../gen/lanyard/v1/attestation';
import type { FederatedBundleSource } from '../federation/manager';

export interface AttestDeps {
  store: Store;
  ca: CaManager;
  attestors: Attestors;
  defaultTtlSeconds: number;
  clock: () => Date;
  logger: Logger;
  /** Issuance policy (policy.files): narrows the entry's scopes; absent = none, policyVersion "none". */
  policy?: IssuancePolicySource;
  /** The federated bundles an entry's federates_with names; absent = none handed out. */
  federation?: FederatedBundleSource;
}

type AttestCall = grpc.ServerDuplexStream<AttestRequest, AttestResponse>;

function protocolError(message: string): LanyardError {
  return new InvalidArgumentError(message);
}

export function createAttestHandler(
  deps: AttestDeps,
): grpc.handleBidiStreamingCall<AttestRequest, AttestResponse> {
  return (call: AttestCall) => {
    const started = process.hrtime.bigint();
    let finished = false;
    let begun = false;
    // Set once the call failed or was cancelled: an attestation still running must then change nothing.
    let abandoned = false;
    const channel = new StreamChallengeChannel((challenge) => {
      call.write({ step: { $case: 'challenge', value: { challenge: Buffer.from(challenge) } } });
    });
    const logFields = (): Record<string, unknown> => ({
      method: 'Attest',
      durationMs: Number(process.hrtime.bigint() - started) / 1e6,
      peer: call.getPeer(),
    });
    const fail = (e: unknown): void => {
      abandoned = true;
      channel.close(isLanyardError(e) ? e : undefined);
      if (finished) return;
      finished = true;
      const status = toStatus(e);
      const fields = { ...logFields(), errorCode: isLanyardError(e) ? e.code : undefined };
      if (isLanyardError(e) && grpcStatusOf(e) !== GrpcStatus.INTERNAL)
        deps.logger.warn(fields, status.details ?? '');
      else deps.logger.error({ ...fields, err: e }, 'attest failed');
      call.emit('error', status);
    };

    call.on('data', (req: AttestRequest) => {
      try {
        const step = req.step;
        if (step === undefined) throw protocolError('AttestRequest without params or challenge_response');
        if (step.$case === 'params') {
          if (begun) throw protocolError('AttestParams sent twice: one attestation per stream');
          begun = true;
          attest(deps, step.value, channel, () => abandoned, attestAuditOf(call)).then((result) => {
            if (finished) return;
            finished = true;
            channel.close();
            call.write({ step: { $case: 'result', value: result.response } });
            call.end();
            deps.logger.info(
              {
                ...logFields(),
                code: 'OK',
                attestor: step.value.attestorType,
                spiffeId: result.entry.spiffeId,
                entryId: result.entry.id,
              },
              'attested',
            );
          }, fail);
        } else {
          if (!begun) throw protocolError('challenge_response before AttestParams');
          channel.respond(step.value);
        }
      } catch (e) {
        fail(e);
      }
    });
    call.on('end', () => {
      if (!begun) fail(protocolError('the stream ended before AttestParams was sent'));
      // Otherwise a pending challenge fails through the channel; a finished one is unaffected.
      else channel.close();
    });
    call.on('cancelled', () => {
      // The client is gone, or grpc-js ended the call itself (an undecodable frame): nothing can be sent;
      // the attestation (and its transaction) is abandoned. Logged, because every call gets a line.
      if (!finished) {
        deps.logger.info(
          { ...logFields(), code: 'CANCELLED', begun },
          'attestation abandoned: the call was cancelled',
        );
        // A finished call closed the channel already (close is idempotent): no error to build for it.
        channel.close(new InvalidArgumentError('the client cancelled the attestation'));
      }
      finished = true;
      abandoned = true;
    });
    call.on('error', () => channel.close());
  };
}

interface Attested {
  entry: Entry;
  response: AttestResult;
}

async function attest(
  deps: AttestDeps,
  params: AttestParams,
  channel: StreamChallengeChannel,
  isAbandoned: () => boolean,
  audit: AttestTransactionalAudit | undefined,
): Promise<Attested> {
  const { ca, store } = deps;
  // Proof of possession of the new key first: no evidence is spent on a request that cannot be signed.
  const csr = await ca.checkCsr(params.csr);
  const attestor = deps.attestors.get(params.attestorType);
  const now = deps.clock();

  const issue = async (
    result: AttestationResult,
    ops: Pick<StoreOps, 'listEntries' | 'getEntry'>,
  ): Promise<{ entry: Entry; signed: SignedX509Svid }> => {
    const entry = await matchEntry(ops, {
      selectors: result.selectors,
      ...(result.boundSpiffeId !== undefined ? { boundSpiffeId: result.boundSpiffeId } : {}),
      ...(result.boundEntryId !== undefined ? { boundEntryId: result.boundEntryId } : {}),
      ...(result.boundAt !== undefined ? { boundAt: result.boundAt } : {}),
      requestedSpiffeId: params.spiffeId,
      now,
    });
    const context = newWorkloadContext(
      entry,
      {
        method: attestor.type,
        evidenceSha256: result.evidenceSha256,
        issuer: ca.serverSvid().id.toString(),
        issuedAt: wholeSeconds(now),
      },
      deps.policy,
    );
    const signed = await issueWorkloadSvid(ca, {
      entry,
      publicKey: csr.publicKey,
      context,
      defaultTtlSeconds: deps.defaultTtlSeconds,
      now,
    });
    return { entry, signed };
  };

  let outcome: { entry: Entry; signed: SignedX509Svid };
  if (attestor.type === JOIN_TOKEN_ATTESTOR) {
    // The token is spent, the SVID signed and its audit record (naming the token) written in one transaction,
    // shared with the other issuance calls in flight and committed once for all of them.
    const done = await sharedTransaction(
      store,
      async (tx): Promise<{ issued: { entry: Entry; signed: SignedX509Svid } } | { refused: unknown }> => {
        const result = await attestor.attest(params.evidence, channel, now, { store: tx });
        let issued: { entry: Entry; signed: SignedX509Svid };
        try {
          issued = await issue(result, tx);
        } catch (e) {
          // The entry the token is bound to is gone or changed (the only refusal of a bound match): commit the
          // spent token, then refuse. Fail closed: the token never wakes up for an entry re-created later.
          if (e instanceof NoMatchingEntryError && isBound(result)) return { refused: e };
          throw e;
        }
        // A client that left, or a call already failed (say, params sent twice), cannot receive the SVID:
        // roll back so the token stays unspent.
        if (isAbandoned()) {
          throw new InvalidArgumentError('the attestation was abandoned');
        }
        await audit?.record(tx, issued.signed.leaf, spentEvidence(result));
        return { issued };
      },
    );
    if ('refused' in done) throw done.refused;
    outcome = done.issued;
  } else {
    // Never inside a transaction while the runtime answers challenges: a slow client would hold the lock.
    const result = await attestor.attest(params.evidence, channel, now);
    outcome = await issue(result, store);
    if (audit !== undefined) {
      const signed = outcome.signed;
      await sharedTransaction(store, (tx) => audit.record(tx, signed.leaf));
    }
  }
  return {
    entry: outcome.entry,
    response: {
      svid: svidToProto(outcome.signed, outcome.entry),
      bundle: bundleToProto(outcome.signed.bundle),
      federatedBundles: (deps.federation?.bundlesFor(outcome.entry.federatesWith) ?? []).map((b) =>
        bundleToProto(b),
      ),
    },
  };
}

/** The evidence an attestation used up, for its audit record: a join token by its id, never the secret. */
function spentEvidence(result: AttestationResult): string | undefined {
  const token = result.selectors.find((s) => s.type === JOIN_TOKEN_SELECTOR_TYPE);
  return token !== undefined ? `token ${token.value}` : undefined;
}
