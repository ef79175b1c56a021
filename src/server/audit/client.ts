/** A promise-based AuditService client on the admin socket, for `lanyard audit` and tests. */
import * as grpc from '@grpc/grpc-js';
import {
  AuditServiceClient,
  type ExportAuditResponse,
  type GetAuditHeadResponse,
  type IngestAuditChainResponse,
  QueryAuditRecordsRequest,
  type QueryAuditRecordsResponse,
} from '../../gen/lanyard/v1/audit';
import type { AuditQueryKey } from '../../audit/log';
import { isLanyardError } from '../../errors';
import { AdminCallError } from '../admin-client';
import { ExportLineJoiner, MAX_EXPORT_LINE_BYTES } from './export-messages';

const CASE: Record<AuditQueryKey, NonNullable<QueryAuditRecordsRequest['key']>['$case']> = {
  sessionId: 'sessionId',
  rootSessionId: 'rootSessionId',
  serial: 'serialHex',
  principal: 'principal',
  agentId: 'agentId',
};

export class AuditAdminClient {
  private readonly client: AuditServiceClient;
  private readonly timeoutMs: number;
  private readonly maxExportLineBytes: number;

  /**
   * @param options.maxExportLineBytes the longest export or query line put together from pieces (default
   *   MAX_EXPORT_LINE_BYTES, above any record); a longer one fails the export or query
   */
  constructor(socketPath: string, options: { timeoutMs?: number; maxExportLineBytes?: number } = {}) {
    this.client = new AuditServiceClient(`unix://${socketPath}`, grpc.credentials.createInsecure());
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.maxExportLineBytes = options.maxExportLineBytes ?? MAX_EXPORT_LINE_BYTES;
  }

  /**
   * Every record (all pages) whose `key` equals `value`, as JSON lines. A line too long for one response comes
   * in pieces over several pages and is put back together (at most maxExportLineBytes, as an export's).
   * @throws AuditError(ERR_AUDIT_RECORD_INVALID) for a line over maxExportLineBytes or one cut off
   */
  async query(key: AuditQueryKey, value: string, chain = ''): Promise<string[]> {
    const out: string[] = [];
    const joiner = new ExportLineJoiner(this.maxExportLineBytes);
    let pageToken = '';
    do {
      const req = QueryAuditRecordsRequest.fromPartial({
        key: { $case: CASE[key], value } as QueryAuditRecordsRequest['key'],
        chain,
        pageSize: 1000,
        pageToken,
      });
      const res = await this.unary<QueryAuditRecordsRequest, QueryAuditRecordsResponse>(
        (r, md, o, cb) => this.client.queryAuditRecords(r, md, o, cb),
        req,
      );
      for (const r of res.records) {
        const lines = joiner.take({
          lines: r.json !== '' ? [r.json] : [],
          linePiece: r.jsonPiece,
          lineContinues: r.jsonContinues,
        });
        for (const l of lines) out.push(l);
      }
      pageToken = res.nextPageToken;
    } while (pageToken !== '');
    joiner.end();
    return out;
  }

  /** A whole chain as JSON lines (the server's own when `chain` is empty). */
  async export(chain = ''): Promise<string[]> {
    const lines: string[] = [];
    for await (const batch of this.exportLines(chain)) lines.push(...batch);
    return lines;
  }

  /**
   * A whole chain as JSON lines, in the server's batches as they arrive: the next batch is read only when the
   * caller asks for it (flow control), so a chain of any length passes in bounded memory. A line too long for
   * one message arrives in pieces and is yielded whole, alone. A long chain takes longer than any fixed
   * deadline: the call fails when no batch arrives for the client's timeout instead.
   * @throws AuditError(ERR_AUDIT_RECORD_INVALID) for a line over maxExportLineBytes or one cut off
   */
  async *exportLines(chain = ''): AsyncGenerator<string[]> {
    const stream = this.client.exportAudit({ chain }, new grpc.Metadata());
    const joiner = new ExportLineJoiner(this.maxExportLineBytes);
    let idle: NodeJS.Timeout | undefined;
    let timedOut = false;
    const arm = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        timedOut = true;
        stream.cancel();
      }, this.timeoutMs);
    };
    arm();
    try {
      for await (const m of stream as AsyncIterable<ExportAuditResponse>) {
        clearTimeout(idle);
        const lines = joiner.take(m);
        if (lines.length > 0) yield lines;
        arm();
      }
      joiner.end();
    } catch (e) {
      if (isLanyardError(e)) throw e;
      const err = e as grpc.ServiceError;
      if (timedOut) {
        throw new AdminCallError(
          grpc.status.DEADLINE_EXCEEDED,
          `no audit export batch for ${this.timeoutMs} ms`,
          undefined,
        );
      }
      throw typeof err.code === 'number' ? AdminCallError.from(err) : e;
    } finally {
      clearTimeout(idle);
      // A caller that stops early (a failed write) ends the call instead of leaving it open.
      stream.cancel();
    }
  }

  /** What the server's readable witnesses hold: each witness's name and entry lines. */
  readWitnesses(): Promise<{ witness: string; lines: string[] }[]> {
    return new Promise((resolve, reject) => {
      const byName = new Map<string, string[]>();
      const stream = this.client.readAuditWitness({}, new grpc.Metadata(), {
        deadline: Date.now() + this.timeoutMs,
      });
      stream.on('data', (m: { witness: string; lines: string[] }) => {
        const lines = byName.get(m.witness) ?? [];
        lines.push(...m.lines);
        byName.set(m.witness, lines);
      });
      stream.on('error', (e: grpc.ServiceError) => reject(AdminCallError.from(e)));
      stream.on('end', () => resolve([...byName].map(([witness, lines]) => ({ witness, lines }))));
    });
  }

  head(chain = ''): Promise<GetAuditHeadResponse> {
    return this.unary((r, md, o, cb) => this.client.getAuditHead(r, md, o, cb), { chain });
  }

  ingest(jsonl: string): Promise<IngestAuditChainResponse> {
    return this.unary((r, md, o, cb) => this.client.ingestAuditChain(r, md, o, cb), {
      jsonl: Buffer.from(jsonl),
    });
  }

  close(): void {
    this.client.close();
  }

  private unary<Req, Res>(
    method: (
      req: Req,
      md: grpc.Metadata,
      options: Partial<grpc.CallOptions>,
      cb: (e: grpc.ServiceError | null, r: Res) => void,
    ) => grpc.ClientUnaryCall,
    request: Req,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      method(request, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (e, r) =>
        e ? reject(AdminCallError.from(e)) : resolve(r),
      );
    });
  }
}
