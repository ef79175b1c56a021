/**
 * AuditService: queries by the investigator's keys, export of a whole chain, the signed head, and ingest of
 * chains shipped by services that use the hop helpers. Admin only (services.ts puts it on the admin socket
 * and behind guardAdmin on the public listener).
 */
import type * as grpc from '@grpc/grpc-js';
import { AuditPublicKey } from '../../audit/audit-key';
import { canonicalJson } from '../../audit/canonical';
import { recordLine } from '../../audit/chain';
import { checkpointLine, type AuditCheckpoint } from '../../audit/checkpoint';
import { headerLine, parseChainText } from '../../audit/jsonl';
import type { AuditQueryKey } from '../../audit/log';
import { verifyChain } from '../../audit/verify-chain';
import { AuditError, AuthorizationError, ErrorCode, LanyardError } from '../../errors';
import {
  AuditServiceService,
  type AuditServiceServer,
  type ExportAuditRequest,
  type ExportAuditResponse,
  type QueryAuditRecordsRequest,
} from '../../gen/lanyard/v1/audit';
import type { Store } from '../../store/store';
import { toStatus, unaryHandler } from '../grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import type { Logger } from '../logging';
import type { AuditRecorder } from './recorder';

export const AUDIT_SERVICE_NAME = 'lanyard.v1.AuditService';

/** Lines per ExportAudit message: well under the 4 MiB message limit for identifier-only records. */
const EXPORT_BATCH = 500;

export interface AuditServiceDeps {
  store: Store;
  recorder: AuditRecorder;
  logger: Logger;
  clock: () => Date;
  /**
   * Who is calling, for IngestAuditChain: the verified SPIFFE ID of the caller's SVID (public listener; throws
   * when there is none). Absent on the admin socket, whose only callers are the server's owner.
   */
  callerId?: (call: grpc.ServerUnaryCall<unknown, unknown>) => Promise<string>;
}

const KEYS: Record<NonNullable<QueryAuditRecordsRequest['key']>['$case'], AuditQueryKey> = {
  sessionId: 'sessionId',
  rootSessionId: 'rootSessionId',
  serialHex: 'serial',
  principal: 'principal',
  agentId: 'agentId',
};

/** As the CA and the verifier compare serials: lowercase hex, no colons, no leading zeros. */
export function normaliseSerialHex(s: string): string {
  return s
    .toLowerCase()
    .replace(/[:\s]/g, '')
    .replace(/^0+(?=.)/, '');
}

export function createAuditService(deps: AuditServiceDeps): ServiceRegistration {
  const { store, recorder } = deps;
  const log = deps.logger.child({ service: AUDIT_SERVICE_NAME });
  const chainOf = (c: string): string => (c === '' ? recorder.chain : c);

  /** The public key of a chain: the server's own, or the one pinned for a shipped chain. */
  const publicJwkOf = async (chain: string): Promise<unknown> => {
    if (chain === recorder.chain) return recorder.key.publicKey.jwk();
    const info = (await store.audit.chains()).find((c) => c.chain === chain);
    return info?.publicJwk !== undefined ? (JSON.parse(info.publicJwk) as unknown) : undefined;
  };

  const implementation: AuditServiceServer = {
    queryAuditRecords: unaryHandler(
      'QueryAuditRecords',
      log,
      async (req) => {
        if (req.key === undefined || req.key.value === '') {
          throw new LanyardError(
            ErrorCode.INVALID_ARGUMENT,
            'name a key: session, root session, serial, principal or agent',
          );
        }
        const value = req.key.$case === 'serialHex' ? normaliseSerialHex(req.key.value) : req.key.value;
        const page = await store.audit.query({
          key: KEYS[req.key.$case],
          value,
          ...(req.chain !== '' && { chain: req.chain }),
          pageSize: req.pageSize || 100,
          ...(req.pageToken !== '' && { pageToken: req.pageToken }),
        });
        return {
          records: page.records.map((r) => ({ chain: r.chain, seq: r.seq, json: recordLine(r) })),
          nextPageToken: page.nextPageToken,
        };
      },
      { okLevel: 'debug' },
    ),

    exportAudit: (call: grpc.ServerWritableStream<ExportAuditRequest, ExportAuditResponse>) => {
      void exportChain(deps, chainOf(call.request.chain), publicJwkOf, call).then(
        () => call.end(),
        (e: unknown) => {
          log.warn({ err: e }, 'audit export failed');
          call.emit('error', toStatus(e));
        },
      );
    },

    getAuditHead: unaryHandler(
      'GetAuditHead',
      log,
      async (req) => {
        const chain = chainOf(req.chain);
        const head = await store.audit.head(chain);
        const checkpoints = await store.audit.checkpoints(chain);
        const latest = checkpoints[checkpoints.length - 1];
        return {
          chain,
          headSeq: head.seq,
          headHash: head.hash,
          checkpointJson: latest !== undefined ? checkpointLine(latest) : '',
          publicKeyJwk: JSON.stringify(recorder.key.publicKey.jwk()),
          chains: (await store.audit.chains()).map((c) => ({ chain: c.chain, headSeq: c.headSeq })),
        };
      },
      { okLevel: 'debug' },
    ),

    ingestAuditChain: unaryHandler('IngestAuditChain', log, async (req, call) => {
      // Who ships: on the public listener only the service whose chain it is (its verified SVID names the
      // chain); on the admin socket the server's owner, who may ship any chain.
      const caller = await deps.callerId?.(call as grpc.ServerUnaryCall<unknown, unknown>);
      const parsed = parseChainText(Buffer.from(req.jsonl).toString('utf8'));
      const chain = parsed.chain;
      if (chain === recorder.chain) {
        throw new AuditError(
          ErrorCode.AUDIT_RECORD_INVALID,
          "the server's own chain cannot be shipped to it",
        );
      }
      if (caller !== undefined && caller !== chain) {
        throw new AuthorizationError(`${caller} may ship only its own audit chain, not "${chain}"`);
      }
      if (parsed.publicJwk === undefined) {
        throw new AuditError(ErrorCode.AUDIT_RECORD_INVALID, 'the header names no audit public key');
      }
      const key = AuditPublicKey.fromJwk(parsed.publicJwk);
      const jwk = canonicalJson({ kty: 'OKP', crv: 'Ed25519', x: key.jwk().x });
      const pinnedBefore = (await store.audit.chains()).find((c) => c.chain === chain)?.publicJwk;
      if (pinnedBefore !== undefined && pinnedBefore !== jwk) {
        throw new AuditError(
          ErrorCode.AUDIT_CHAIN_BROKEN,
          `chain "${chain}" is pinned to another audit key than the one this shipment is signed with`,
        );
      }
      const result = verifyChain(chain, parsed.records, parsed.checkpoints, key);
      if (!result.ok) {
        const b = result.break!;
        throw new AuditError(
          ErrorCode.AUDIT_CHAIN_BROKEN,
          `shipped chain "${chain}": ${b.kind} at ${b.seq}: ${b.message}`,
        );
      }
      // Hash links alone prove nothing about who wrote a record: anyone holding the (public) head can extend
      // it. Only a checkpoint signed with the chain's key over the last record makes the shipment its owner's.
      if (result.checkpointedSeq !== result.headSeq) {
        throw new AuditError(
          ErrorCode.AUDIT_CHAIN_BROKEN,
          `shipped chain "${chain}" ends at record ${result.headSeq} but its last signed checkpoint covers ` +
            `${result.checkpointedSeq}: write a checkpoint before shipping (lanyard audit ship does)`,
        );
      }
      if (pinnedBefore === undefined) {
        // First use: on the public listener the caller proved it is the chain's service (checked above), so
        // only B can pin B's key; on the admin socket the owner pins it.
        const pinned = await store.audit.pinChainKey(chain, jwk, deps.clock());
        if (pinned !== jwk) {
          throw new AuditError(
            ErrorCode.AUDIT_CHAIN_BROKEN,
            `chain "${chain}" is pinned to another audit key than the one this shipment is signed with`,
          );
        }
      }
      const added = await store.audit.appendRecords(chain, parsed.records, parsed.checkpoints);
      return { chain, added, headSeq: (await store.audit.head(chain)).seq };
    }),
  };
  return { name: AUDIT_SERVICE_NAME, definition: AuditServiceService, implementation };
}

async function exportChain(
  deps: AuditServiceDeps,
  chain: string,
  publicJwkOf: (chain: string) => Promise<unknown>,
  call: grpc.ServerWritableStream<ExportAuditRequest, ExportAuditResponse>,
): Promise<void> {
  const write = async (lines: string[]): Promise<void> => {
    if (call.cancelled) throw new AuditError(ErrorCode.AUDIT_WRITE_FAILED, 'export cancelled');
    if (!call.write({ lines })) await new Promise((resolve) => call.once('drain', resolve));
  };
  const checkpoints = await deps.store.audit.checkpoints(chain);
  const bySeq = new Map<number, AuditCheckpoint[]>();
  for (const c of checkpoints) bySeq.set(c.seq, [...(bySeq.get(c.seq) ?? []), c]);
  await write([headerLine(chain, await publicJwkOf(chain)), ...(bySeq.get(0) ?? []).map(checkpointLine)]);
  let after = 0;
  for (;;) {
    const { records: batch, nextPosition } = await deps.store.audit.readRecords(chain, after, EXPORT_BATCH);
    if (batch.length === 0) break;
    const lines: string[] = [];
    for (const r of batch) {
      lines.push(recordLine(r));
      for (const c of bySeq.get(r.seq) ?? []) lines.push(checkpointLine(c));
    }
    await write(lines);
    after = nextPosition;
  }
}
