/**
 * AuditService: queries by the investigator's keys, export of a whole chain, the signed head, what the
 * external witnesses hold, and ingest of chains shipped by services that use the hop helpers. Admin only
 * (services.ts puts it on the admin socket and behind guardAdmin on the public listener), except ingest.
 *
 * A shipment is taken only when it is the shipper's own signed chain, holds only the shipper's own hop
 * decisions dated plausibly (shipped-records.ts), and fits the shipper's quota (ingest-quota.ts); its pinned
 * key and final checkpoint go to the witnesses as well as the store.
 */
import type * as grpc from '@grpc/grpc-js';
import { AuditPublicKey } from '../../audit/audit-key';
import { canonicalJson } from '../../audit/canonical';
import { recordLine } from '../../audit/chain';
import { checkpointLine, type AuditCheckpoint } from '../../audit/checkpoint';
import { headerLine, parseChainText } from '../../audit/jsonl';
import type { AuditQueryKey, StoredAuditRecord } from '../../audit/log';
import { parseRecord, type AuditRecord } from '../../audit/record';
import { storedRecordLine } from '../../audit/record-json';
import { checkShippedRecords, SHIPPED_RECORD_DEFAULTS } from '../../audit/shipped-records';
import { verifyAuditChain } from '../../audit/verify-chain';
import {
  AuditChainBrokenError,
  AuditRecordInvalidError,
  AuditWriteFailedError,
  AuthorizationError,
  ErrorCode,
  InvalidArgumentError,
  isLanyardError,
} from '../../errors';
import {
  AuditServiceService,
  type AuditServiceServer,
  type ExportAuditRequest,
  type ExportAuditResponse,
  type QueryAuditRecordsRequest,
  type ReadAuditWitnessRequest,
  type ReadAuditWitnessResponse,
} from '../../gen/lanyard/v1/audit';
import type { Store } from '../../store/store';
import { toStatus, unaryHandler } from '../../internal/grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import type { Logger } from '../../internal/logging';
import { ExportMessageWriter } from './export-messages';
import { queryLinesPage } from './query-pages';
import type { IngestQuota } from './ingest-quota';
import type { AuditRecorder } from './recorder';

export const AUDIT_SERVICE_NAME = 'lanyard.v1.AuditService';

/**
 * Records read from the store at a time for ExportAudit: each read (and the lines made of it) holds the server's
 * thread, so a read stays at a few milliseconds; an export of millions of records is thousands of reads.
 */
const EXPORT_READ = 1000;
// Messages of at most about 1 MiB of lines, a longer line in pieces: export-messages.ts.
/** Lines per ReadAuditWitness message: checkpoint and pin lines are under 1 KiB. */
const WITNESS_BATCH = 1000;

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
  /** What one workload may ship per window; applied to callers named by `callerId` (not the admin socket). */
  quota?: IngestQuota;
  /** Clock skew and maximum age allowed for a shipped record's time; default SHIPPED_RECORD_DEFAULTS. */
  shippedRecordTimes?: { maxClockSkewSeconds: number; maxAgeSeconds: number };
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

  /**
   * The server's chain is exported through a checkpoint signed over its head just now, so a healthy chain
   * always verifies; when the stored chain no longer continues what the server signed, nothing is signed
   * and the chain goes out as stored, for verify to show the break.
   */
  const signedThrough = async (chain: string): Promise<number | undefined> => {
    if (chain !== recorder.chain) return undefined;
    try {
      return (await recorder.signHead()).seq;
    } catch (e) {
      if (isLanyardError(e) && e.code === ErrorCode.AUDIT_CHAIN_BROKEN) return undefined;
      throw e;
    }
  };

  const implementation: AuditServiceServer = {
    queryAuditRecords: unaryHandler(
      'QueryAuditRecords',
      log,
      async (req) => {
        if (req.key === undefined || req.key.value === '') {
          throw new InvalidArgumentError('name a key: session, root session, serial, principal or agent');
        }
        const value = req.key.$case === 'serialHex' ? normaliseSerialHex(req.key.value) : req.key.value;
        // Cut by bytes as well as by records, a record too long for a response in pieces: query-pages.ts.
        return queryLinesPage(store.audit, {
          key: KEYS[req.key.$case],
          value,
          ...(req.chain !== '' && { chain: req.chain }),
          pageSize: req.pageSize || 100,
          ...(req.pageToken !== '' && { pageToken: req.pageToken }),
        });
      },
      { okLevel: 'debug' },
    ),

    exportAudit: (call: grpc.ServerWritableStream<ExportAuditRequest, ExportAuditResponse>) => {
      const chain = chainOf(call.request.chain);
      void signedThrough(chain)
        .then((through) => exportChain(deps, chain, publicJwkOf, through, call))
        .then(
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
        const latest = await store.audit.latestCheckpoint(chain);
        return {
          chain,
          headSeq: head.seq,
          headHash: head.hash,
          checkpointJson: latest !== undefined ? checkpointLine(latest) : '',
          publicKeyJwk: JSON.stringify(recorder.key.publicKey.jwk()),
          chains: (await store.audit.chains()).map((c) => ({ chain: c.chain, headSeq: c.headSeq })),
          // Every server's keys: the servers of one database sign checkpoints of one shared chain.
          auditKeyJwks: (await recorder.fleetRing()).ring.jwks().map((k) => JSON.stringify(k)),
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
        throw new AuditRecordInvalidError("the server's own chain cannot be shipped to it");
      }
      if (caller !== undefined && caller !== chain) {
        throw new AuthorizationError(`${caller} may ship only its own audit chain, not "${chain}"`);
      }
      if (parsed.publicJwk === undefined) {
        throw new AuditRecordInvalidError('the header names no audit public key');
      }
      const key = AuditPublicKey.fromJwk(parsed.publicJwk);
      const jwk = canonicalJson({ kty: 'OKP', crv: 'Ed25519', x: key.jwk().x });
      const pinnedBefore = (await store.audit.chains()).find((c) => c.chain === chain)?.publicJwk;
      if (pinnedBefore !== undefined && pinnedBefore !== jwk) {
        throw new AuditChainBrokenError(
          `chain "${chain}" is pinned to another audit key than the one this shipment is signed with`,
        );
      }
      // The tail is checked just below, with the message a shipper needs.
      const result = verifyAuditChain(chain, parsed.records, parsed.checkpoints, key, {
        allowUnsignedTail: true,
      });
      if (!result.ok) {
        const b = result.break!;
        throw new AuditChainBrokenError(`shipped chain "${chain}": ${b.kind} at ${b.seq}: ${b.message}`);
      }
      // Hash links alone prove nothing about who wrote a record: anyone holding the (public) head can extend
      // it. Only a checkpoint signed with the chain's key over the last record makes the shipment its owner's.
      if (result.checkpointedSeq !== result.headSeq) {
        throw new AuditChainBrokenError(
          `shipped chain "${chain}" ends at record ${result.headSeq} but its last signed checkpoint covers ` +
            `${result.checkpointedSeq}: write a checkpoint before shipping (lanyard audit ship does)`,
        );
      }
      // What the shipment adds must be the shipper's own hop decisions, dated when they could have happened.
      const now = deps.clock();
      const storedHead = await store.audit.head(chain);
      const adding = parsed.records.filter((r) => r.seq > storedHead.seq);
      checkShippedRecords(chain, adding, await recordAt(chain, storedHead.seq, parsed.records), {
        now,
        ...(deps.shippedRecordTimes ?? SHIPPED_RECORD_DEFAULTS),
      });
      const refund =
        caller !== undefined && deps.quota !== undefined && adding.length > 0
          ? deps.quota.charge(
              caller,
              adding.length,
              adding.reduce((n, r) => n + Buffer.byteLength(recordLine(r)) + 1, 0),
              now,
            )
          : undefined;
      let added: number;
      try {
        if (pinnedBefore === undefined) {
          // First use: on the public listener the caller proved it is the chain's service (checked above), so
          // only B can pin B's key; on the admin socket the owner pins it.
          const pinned = await store.audit.pinChainKey(chain, jwk, now);
          if (pinned !== jwk) {
            throw new AuditChainBrokenError(
              `chain "${chain}" is pinned to another audit key than the one this shipment is signed with`,
            );
          }
          await recorder.witnessPin(chain, key.jwk().x);
        }
        added = await store.audit.appendRecords(chain, parsed.records, parsed.checkpoints);
      } catch (e) {
        refund?.();
        throw e;
      }
      const final = parsed.checkpoints
        .filter((c) => c.seq === result.headSeq)
        .sort((a, b) => (a.time < b.time ? 1 : -1))[0];
      if (final !== undefined && added > 0) await recorder.witnessCheckpoint(final);
      return { chain, added, headSeq: (await store.audit.head(chain)).seq };
    }),

    readAuditWitness: (
      call: grpc.ServerWritableStream<ReadAuditWitnessRequest, ReadAuditWitnessResponse>,
    ) => {
      void streamWitnesses(recorder, call).then(
        () => call.end(),
        (e: unknown) => {
          log.warn({ err: e }, 'audit witness read failed');
          call.emit('error', toStatus(e));
        },
      );
    },
  };

  /** The record at `seq` of a chain: from the shipment when it re-ships it, else from the store. */
  const recordAt = async (
    chain: string,
    seq: number,
    shipped: readonly AuditRecord[],
  ): Promise<AuditRecord | undefined> => {
    if (seq === 0) return undefined;
    const inShipment = shipped.find((r) => r.seq === seq);
    if (inShipment !== undefined) return inShipment;
    const { records } = await store.audit.readRecords(chain, seq - 1, 1);
    return records[0]?.seq === seq ? records[0] : undefined;
  };
  return { name: AUDIT_SERVICE_NAME, definition: AuditServiceService, implementation };
}

/**
 * A chain's checkpoints in (seq, time) order, read from the store a page at a time as the export reaches them:
 * an export holds one page, whatever the number of signed heads.
 */
class CheckpointCursor {
  private page: AuditCheckpoint[] = [];
  private next = 0;
  private last: AuditCheckpoint | undefined;
  private exhausted = false;

  constructor(
    private readonly store: Store,
    private readonly chain: string,
    private readonly within: (seq: number) => boolean,
  ) {}

  /** Whether upTo(seq) may have a line to add (false: nothing to do, without a call per record). */
  due(seq: number): boolean {
    return this.next === this.page.length ? !this.exhausted : this.page[this.next]!.seq <= seq;
  }

  /** The lines of every checkpoint not yet taken with seq at most `seq` (every one left: Infinity). */
  async upTo(seq: number, add: (line: string) => Promise<void>): Promise<void> {
    for (;;) {
      if (this.next === this.page.length) {
        if (this.exhausted) return;
        this.page = await this.store.audit.readCheckpoints(this.chain, this.last, EXPORT_READ);
        this.next = 0;
        if (this.page.length < EXPORT_READ) this.exhausted = true;
        if (this.page.length === 0) return;
        this.last = this.page[this.page.length - 1];
      }
      const c = this.page[this.next]!;
      if (c.seq > seq) return;
      this.next++;
      if (this.within(c.seq)) await add(checkpointLine(c));
    }
  }
}

/**
 * @param through for the server's chain, the checkpoint just signed: records and checkpoints after it (appended
 *   meanwhile) belong to the next export, so this one ends exactly at a signed head
 */
async function exportChain(
  deps: AuditServiceDeps,
  chain: string,
  publicJwkOf: (chain: string) => Promise<unknown>,
  through: number | undefined,
  call: grpc.ServerWritableStream<ExportAuditRequest, ExportAuditResponse>,
): Promise<void> {
  const out = new ExportMessageWriter(async (m) => {
    if (call.cancelled) throw new AuditWriteFailedError('export cancelled');
    if (!call.write(m)) await new Promise((resolve) => call.once('drain', resolve));
  });
  const add = async (line: string): Promise<void> => out.add(line);
  const within = (seq: number): boolean => through === undefined || seq <= through;
  const checkpoints = new CheckpointCursor(deps.store, chain, within);
  const own = chain === deps.recorder.chain;
  await add(
    headerLine(
      chain,
      await publicJwkOf(chain),
      own ? (await deps.recorder.fleetRing()).ring.jwks() : undefined,
    ),
  );
  await checkpoints.upTo(0, add);
  // Each checkpoint right after the record it signs (or, for a record missing from the store, the next one).
  let after = 0;
  for (let done = false; !done;) {
    const { rows, nextPosition } = await deps.store.audit.readStoredRecords(chain, after, EXPORT_READ);
    if (rows.length === 0) break;
    for (const row of rows) {
      if (!within(row.position)) {
        done = true;
        break;
      }
      // Awaited only when a message is sent or checkpoints are due: millions of records, no promise each.
      const sent = out.add(storedRecordLine(row.body, row.hash) ?? parsedRecordLine(chain, row));
      if (sent !== undefined) await sent;
      if (checkpoints.due(row.position)) await checkpoints.upTo(row.position, add);
    }
    after = nextPosition;
  }
  // Checkpoints beyond the last stored record: records were cut off the end, which the verifier reports.
  await checkpoints.upTo(Infinity, add);
  await out.flush();
}

/**
 * The line of a stored record whose body is not in the canonical form storedRecordLine splices: parsed and
 * written canonically, as every record was before that shortcut (a body that is not a record fails the export).
 */
function parsedRecordLine(chain: string, row: StoredAuditRecord): string {
  let body: unknown;
  try {
    body = JSON.parse(row.body);
  } catch {
    throw new AuditChainBrokenError(`audit record at ${chain}#${row.position} is not JSON`);
  }
  return recordLine(parseRecord({ ...(body as object), hash: row.hash }));
}

async function streamWitnesses(
  recorder: AuditRecorder,
  call: grpc.ServerWritableStream<ReadAuditWitnessRequest, ReadAuditWitnessResponse>,
): Promise<void> {
  for (const { name, lines } of await recorder.readWitnesses()) {
    for (let i = 0; i === 0 || i < lines.length; i += WITNESS_BATCH) {
      if (call.cancelled) throw new AuditWriteFailedError('witness read cancelled');
      if (!call.write({ witness: name, lines: lines.slice(i, i + WITNESS_BATCH) }))
        await new Promise((resolve) => call.once('drain', resolve));
    }
  }
}
