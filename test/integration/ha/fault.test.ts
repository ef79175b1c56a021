/**
 * The HA fault test (docs/operator/ha.md, "The fault test"): three server processes on one PostgreSQL, 200
 * clients on the failover clients (every server's address, each client preferring its own), attesting with join
 * tokens, renewing on their own schedule, starting and ending task sessions, creating and redeeming grants. One
 * server is SIGKILLed while calls are in flight. Then, as invariants (never timings): every client kept a valid
 * identity through the survivors and renewed after the kill; no join token and no grant was redeemed twice (the
 * clients' successes, the store rows, the audit records, and a sample offered again to every server); every
 * ended session is ended in the store, in every server's revocation feed, and refused as a caller by every server
 * (the killed one restarted too) while its SVID is otherwise valid; every SVID a client was given is in the store
 * and the audit trail; `lanyard audit verify` passes on every server and on an export with every server's keys.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { attestToServer } from '../../../src/client/attest';
import { grantFor, redeemGrant, startSession, type SessionX509Source } from '../../../src/client/handoff';
import { HandoffKey } from '../../../src/client/handoff-keys';
import { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials } from '../../../src/client/server-credentials';
import { ServerEndpoints } from '../../../src/client/server-endpoints';
import { ServerX509Source } from '../../../src/client/server-x509-source';
import type { X509Bundle } from '../../../src/bundle';
import { ERROR_CODE_METADATA_KEY } from '../../../src/internal/grpc-call';
import {
  EndSessionRequest,
  SessionServiceClient,
  type WatchRevocationsResponse,
} from '../../../src/gen/lanyard/v1/session';
import type { X509Svid } from '../../../src/svid/x509-svid';
import { verifyX509Svid } from '../../../src/verify';
import { waitFor } from '../../support/agent';
import { bundleOfProcess, spawnSharedServer, type SharedServerProcess } from '../../support/ha';
import { usePostgresDatabase } from '../../support/postgres-cluster';
import { connectPublic, newKey, renewCall } from '../../support/public-client';
import { cliOk, runCli } from '../../support/server-process';
import { collectWatch, id, TD } from '../../support/sessions';
import { tempDir } from '../../support/tmp';

const SERVERS = 3;
/** 200; LANYARD_FAULT_CLIENTS runs a smaller fleet (to reproduce a failure quickly). */
const CLIENTS = Number(process.env.LANYARD_FAULT_CLIENTS ?? 200);
/** Long enough for 200 clients on two busy cores, short enough that every client renews during the run. */
const SVID_TTL_SECONDS = 60;
/** Operations (session cycles) the clients complete before the kill, and after it before the run may stop. */
const CYCLES_BEFORE_KILL = Math.min(100, CLIENTS / 2);
const CYCLES_AFTER_KILL = Math.min(100, CLIENTS / 2);
/** How many spent tokens and grants are offered again to every server. */
const SAMPLE = 8;

/** The stable code of a refusal: the LanyardError's, the `lanyard-error-code` trailer, else `GRPC_<status>`. */
function codeOf(e: unknown): string {
  const err = e as { code?: unknown; metadata?: grpc.Metadata };
  if (typeof err.code === 'string') return err.code;
  const trailer = err.metadata?.get?.(ERROR_CODE_METADATA_KEY)[0];
  if (typeof trailer === 'string') return trailer;
  return typeof err.code === 'number' ? `GRPC_${grpc.status[err.code]}` : `THROWN ${String(e)}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A session as its client saw it: every serial it was given, its last SVID, and whether its end was acknowledged. */
interface SessionLog {
  sessionId: string;
  serials: string[];
  last: X509Svid;
  ended: boolean;
  /** Ended by the end of its parent session (a delegated session). */
  parent?: SessionLog;
}

interface GrantLog {
  grantId: string;
  key: HandoffKey;
  child: FaultClient;
  redeemedSessionId?: string;
}

class FaultClient {
  readonly id: string;
  readonly servers: string[];
  source!: ServerX509Source;
  readonly workloadSerials: string[] = [];
  /** Times the workload SVID was replaced by a renewal. */
  readonly renewedAt: number[] = [];
  readonly sessions: SessionLog[] = [];
  readonly grants: GrantLog[] = [];
  /** Join tokens offered, and the one that attested. */
  readonly tokens: { token: string; tokenId: string; code?: string }[] = [];
  /** Refusals and failures met on the way, by code. */
  readonly errors: string[] = [];
  cycles = 0;

  constructor(
    readonly index: number,
    addresses: readonly string[],
    readonly partner: FaultClient | undefined,
  ) {
    this.id = id(`fault/c${index}`);
    // Each client prefers another server first, so the load (and the killed server's clients) is spread.
    const n = addresses.length;
    this.servers = addresses.map((_, i) => addresses[(index + i) % n]!);
  }

  async attest(bundle: X509Bundle, token: () => Promise<{ token: string; tokenId: string }>): Promise<void> {
    for (;;) {
      const t: { token: string; tokenId: string; code?: string } = await token();
      this.tokens.push(t);
      try {
        this.source = await ServerX509Source.start({
          server: this.servers,
          bundle,
          attestorType: 'join_token',
          evidence: Buffer.from(t.token),
          retry: { initialMs: 200, maxMs: 2000 },
          deadlineMs: 20_000,
        });
        break;
      } catch (e) {
        // A token whose answer was lost with a server may have been spent there: the client needs a new one.
        t.code = codeOf(e);
        this.errors.push(`attest ${t.code}`);
        if (t.code !== 'ERR_TOKEN_SPENT' && !t.code.startsWith('GRPC_')) throw e;
      }
    }
    this.workloadSerials.push(this.source.getX509Svid().chain[0]!.serialHex);
    this.source.on('update', () => {
      this.workloadSerials.push(this.source.getX509Svid().chain[0]!.serialHex);
      this.renewedAt.push(Date.now());
    });
  }

  /** A session that records every SVID it is given. */
  private track(source: SessionX509Source, parent?: SessionLog): SessionLog {
    const log: SessionLog = {
      sessionId: source.sessionId,
      serials: [source.getX509Svid().chain[0]!.serialHex],
      last: source.getX509Svid(),
      ended: false,
      ...(parent !== undefined && { parent }),
    };
    source.on('update', () => {
      const svid = source.getX509Svid();
      log.serials.push(svid.chain[0]!.serialHex);
      log.last = svid;
    });
    return log;
  }

  /** EndSession as the workload that owns the session (through the failover client). */
  private async end(log: SessionLog, as: X509Svid): Promise<void> {
    const credentials = lanyardChannelCredentials(
      this.source.getX509BundleForTrustDomain(as.id.trustDomain)!,
      as,
    );
    await new ServerEndpoints(this.servers).call(async (address) => {
      const client = new SessionServiceClient(address, credentials, LANYARD_CHANNEL_OPTIONS);
      try {
        await new Promise<void>((resolve, reject) =>
          client.endSession(
            EndSessionRequest.fromPartial({ sessionId: log.sessionId, reason: 'task done' }),
            new grpc.Metadata(),
            { deadline: Date.now() + 20_000 },
            (e) => (e ? reject(e) : resolve()),
          ),
        );
      } finally {
        client.close();
      }
    });
    log.ended = true;
  }

  /** One task: a session; for a client with a partner, a grant the partner redeems; then the ends. */
  async cycle(): Promise<void> {
    const session = await startSession({
      source: this.source,
      server: this.servers,
      ttlSeconds: 600,
      deadlineMs: 20_000,
      revocations: false,
    });
    const log = this.track(session);
    this.sessions.push(log);
    try {
      const partner = this.partner;
      if (partner !== undefined) {
        const key = HandoffKey.generate();
        const grant = await grantFor({
          source: session,
          server: this.servers,
          childId: partner.id,
          childKey: key.id,
          scopes: [],
          deadlineMs: 20_000,
        });
        const g: GrantLog = { grantId: grant.grantId, key, child: partner };
        this.grants.push(g);
        let delegated: SessionX509Source;
        try {
          delegated = await redeemGrant({
            source: partner.source,
            server: partner.servers,
            key,
            deadlineMs: 20_000,
            revocations: false,
          });
        } catch (e) {
          partner.errors.push(`redeem ${codeOf(e)}`);
          throw e;
        }
        g.redeemedSessionId = delegated.sessionId;
        const child = partner.track(delegated, log);
        partner.sessions.push(child);
        // Every other delegated session is ended by its own agent; the rest end with the parent (cascade).
        if (this.cycles % 2 === 0) await partner.end(child, partner.source.getX509Svid());
        await delegated.close();
      }
      await this.end(log, this.source.getX509Svid());
      if (partner !== undefined) {
        for (const s of partner.sessions) if (s.parent === log) s.ended = true;
      }
    } finally {
      await session.close();
    }
    this.cycles += 1;
  }

  async run(stopping: () => boolean): Promise<void> {
    while (!stopping()) {
      try {
        await this.cycle();
      } catch (e) {
        this.errors.push(`cycle ${codeOf(e)}`);
      }
      await sleep(8000 + Math.random() * 8000);
    }
  }
}

/** Progress lines on stderr only when asked (LANYARD_FAULT_VERBOSE=1): a passing run stays quiet in `npm test`. */
const say = (line: string): void => {
  if (process.env.LANYARD_FAULT_VERBOSE === '1') process.stderr.write(line);
};

describe('HA fault: 200 clients, three server processes, one SIGKILLed mid-run', function () {
  this.timeout(10 * 60_000);
  let servers: SharedServerProcess[] = [];
  let clients: FaultClient[] = [];
  let stop = false;
  const pg = usePostgresDatabase('fault', {
    beforeDrop: async () => {
      stop = true;
      await Promise.all(clients.map((c) => c.source?.close()));
      for (const s of servers) {
        // A server's errors, if it logged any, for the failure report.
        const errors = s.process
          .stdout()
          .split('\n')
          .filter((l) => /"level":(40|50|60)/.test(l));
        if (errors.length > 0) process.stderr.write(`${s.dataDir}:\n${errors.slice(0, 40).join('\n')}\n`);
        await s.stop().catch(() => undefined);
      }
    },
  });

  it('keeps every identity, spends every token and grant once, refuses every ended session', async () => {
    const t0 = Date.now();
    const phase = (what: string): void => say(`[fault ${((Date.now() - t0) / 1000).toFixed(1)}s] ${what}\n`);
    const yaml = [`svid: { default_ttl: ${SVID_TTL_SECONDS}s }`, 'log: { level: warn }'];
    servers = await Promise.all(
      Array.from({ length: SERVERS }, () => spawnSharedServer(pg.cluster, pg.database, yaml)),
    );
    await waitFor(async () => {
      const sizes = await Promise.all(
        servers.map(async (s) => (await bundleOfProcess(s)).x509Authorities.length),
      );
      return sizes.every((n) => n === SERVERS);
    }, 60_000);
    phase('servers up');
    const bundle = await bundleOfProcess(servers[1]!);
    const addresses = servers.map((s) => s.address);

    // 200 entries: each even client may delegate to the next one.
    await servers[0]!.admin.batchCreateEntry({
      entries: Array.from({ length: CLIENTS }, (_, i) => ({
        spiffeId: id(`fault/c${i}`),
        selectors: [{ type: 'unix', value: `name:fault-${i}` }],
        x509SvidTtlSeconds: SVID_TTL_SECONDS,
        ...(i % 2 === 0 && { allowedDelegates: [id(`fault/c${i + 1}`)], maxDelegationDepth: 1 }),
      })),
    });
    phase('entries created');
    clients = [];
    for (let i = CLIENTS - 1; i >= 0; i--) {
      clients[i] = new FaultClient(i, addresses, i % 2 === 0 ? clients[i + 1] : undefined);
    }
    const killed = servers[0]!;
    const alive = (): SharedServerProcess[] => servers.filter((s) => s !== killed || !dead);
    let dead = false;
    const newToken = async (c: FaultClient): Promise<{ token: string; tokenId: string }> => {
      const admin = alive()[c.index % alive().length]!.admin;
      const r = await admin.createJoinToken({ spiffeId: c.id });
      return { token: r.token, tokenId: r.tokenId };
    };

    // The fleet starts up (25 attesting at a time), then every client works on its own.
    stop = false;
    for (let w = 0; w < CLIENTS; w += 25) {
      await Promise.all(clients.slice(w, w + 25).map((c) => c.attest(bundle, () => newToken(c))));
    }
    phase('attested');
    const runs = clients.map((c) => c.run(() => stop));
    const cycles = (): number => clients.reduce((n, c) => n + c.cycles, 0);
    const progress = setInterval(() => {
      say(
        `[fault ${((Date.now() - t0) / 1000).toFixed(0)}s] cycles ${cycles()} renewed ${clients.filter((c) => c.renewedAt.length > 0).length} errors ${clients.reduce((n, c) => n + c.errors.length, 0)} ${[...new Set(clients.flatMap((c) => c.errors))].join(',')}\n`,
      );
    }, 5000);
    await waitFor(() => cycles() >= CYCLES_BEFORE_KILL, 180_000);

    // SIGKILL while calls are in flight: no drain, no shutdown.
    const killAt = Date.now();
    await killed.kill();
    dead = true;
    const cyclesAtKill = cycles();
    // The run goes on until every client renewed through the survivors and the clients did more work.
    await waitFor(
      () =>
        clients.every((c) => c.renewedAt.some((t) => t > killAt)) &&
        cycles() >= cyclesAtKill + CYCLES_AFTER_KILL,
      4 * SVID_TTL_SECONDS * 1000,
    );
    stop = true;
    await Promise.all(runs);
    clearInterval(progress);
    say(`[fault] stopped at ${(Date.now() - t0) / 1000}s, kill at ${(killAt - t0) / 1000}s\n`);
    await killed.restart();
    phase('restarted');
    const everyServer = servers;
    const finalBundle = await bundleOfProcess(servers[1]!);

    // Every client holds a current SVID that verifies with the shared bundle, renewed after the kill.
    for (const c of clients) {
      const svid = c.source.getX509Svid();
      const verified = verifyX509Svid(
        svid.chain.map((x) => x.der),
        finalBundle,
      );
      assert.equal(verified.id.toString(), c.id);
      assert.ok(
        c.renewedAt.some((t) => t > killAt),
        `${c.id} renewed after the kill`,
      );
    }
    // Only the refusals a lost server can cause: an answer lost with it (a token or grant it spent).
    const unexpected = clients.flatMap((c) =>
      c.errors.filter(
        (e) =>
          !/^(attest|redeem|cycle) (ERR_TOKEN_SPENT|ERR_GRANT_REPLAYED|GRPC_UNAVAILABLE|GRPC_DEADLINE_EXCEEDED)$/.test(
            e,
          ),
      ),
    );
    assert.deepEqual(unexpected, [], 'no refusal other than those the lost server explains');

    // The store and the audit trail, read directly. The sources still renew on their own schedule: what a client
    // was given is taken before the read, so a renewal answered after it is not counted against the trail.
    const received = new Map(clients.map((c) => [c, [...c.workloadSerials]]));
    const db = (sql: string): Promise<Record<string, unknown>[]> => pg.cluster.query(pg.database, sql);
    const audit = (await db(`SELECT event, serial, body FROM audit_records`)).map((r) => ({
      event: r.event as string,
      serial: r.serial as string | null,
      ...(JSON.parse(r.body as string) as { decision: string; reason?: string }),
    }));
    const allowed = audit.filter((r) => r.decision === 'allow');
    const countBy = (event: string, reason: string): number =>
      allowed.filter((r) => r.event === event && r.reason === reason).length;

    phase('checks: store');
    // Join tokens: each attested once, by the clients' account, in the store and in the audit trail.
    const attestedWith = clients.map((c) => c.tokens.find((t) => t.code === undefined)!);
    assert.equal(new Set(attestedWith.map((t) => t.token)).size, CLIENTS, 'no token attested two clients');
    const tokenRows = await db('SELECT id, spent_at FROM join_tokens');
    const offered = clients.flatMap((c) => c.tokens);
    assert.equal(tokenRows.length, offered.length);
    for (const t of offered) {
      const row = tokenRows.find((r) => r.id === t.tokenId);
      assert.ok(row?.spent_at, `token ${t.tokenId} is spent`);
      assert.equal(countBy('svid.attest', `token ${t.tokenId}`), 1, `token ${t.tokenId} attested once`);
    }

    // Grants: redeemed at most once, and every acknowledged redemption is the store's and the audit trail's.
    const grants = clients.flatMap((c) => c.grants);
    assert.equal(new Set(grants.map((g) => g.grantId)).size, grants.length);
    const grantRows = new Map(
      (await db('SELECT id, redeemed_at, redeemed_session_id FROM grants')).map((r) => [r.id as string, r]),
    );
    for (const g of grants) {
      const row = grantRows.get(g.grantId);
      assert.ok(row !== undefined, `grant ${g.grantId} is stored`);
      const redeemed = countBy('grant.redeem', `grant ${g.grantId}`);
      assert.ok(redeemed <= 1, `grant ${g.grantId} redeemed ${redeemed} times`);
      if (g.redeemedSessionId !== undefined) {
        assert.equal(row.redeemed_session_id, g.redeemedSessionId);
        assert.equal(redeemed, 1);
      } else {
        assert.equal(redeemed, row.redeemed_at === null ? 0 : 1);
      }
    }
    assert.equal(
      allowed.filter((r) => r.event === 'grant.redeem').length,
      [...grantRows.values()].filter((r) => r.redeemed_at !== null).length,
    );

    // Nothing acknowledged is lost: every SVID a client was given has its audit record; a session's is stored.
    const auditedSerials = new Set(allowed.map((r) => r.serial).filter((s) => s !== null));
    const sessionCerts = new Set(
      (await db('SELECT session_id, serial_hex FROM session_certificates')).map(
        (r) => `${r.session_id as string}/${r.serial_hex as string}`,
      ),
    );
    for (const c of clients) {
      for (const serial of received.get(c)!)
        assert.ok(auditedSerials.has(serial), `${c.id}: ${serial} audited`);
      for (const s of c.sessions) {
        for (const serial of s.serials) {
          assert.ok(auditedSerials.has(serial), `session ${s.sessionId}: ${serial} audited`);
          assert.ok(sessionCerts.has(`${s.sessionId}/${serial}`), `session ${s.sessionId}: ${serial} stored`);
        }
      }
    }

    // Ended sessions: ended in the store, and in the revocation feed of every server.
    const ended = clients.flatMap((c) => c.sessions.filter((s) => s.ended));
    assert.ok(ended.length >= CYCLES_BEFORE_KILL + CYCLES_AFTER_KILL);
    const endedRows = new Set(
      (await db('SELECT id FROM sessions WHERE ended_at IS NOT NULL')).map((r) => r.id as string),
    );
    for (const s of ended) assert.ok(endedRows.has(s.sessionId), `session ${s.sessionId} ended in the store`);
    const watcher = clients[1]!.source.getX509Svid();
    for (const s of everyServer) {
      const client = new SessionServiceClient(
        s.address,
        lanyardChannelCredentials(finalBundle, watcher),
        LANYARD_CHANNEL_OPTIONS,
      );
      try {
        const revoked = new Set<string>();
        await collectWatch(client, 0, (messages: readonly WatchRevocationsResponse[]) => {
          for (const m of messages.slice(-1)) {
            for (const r of m.revocations) if (r.kind === 'session') revoked.add(r.id);
          }
          return ended.every((x) => revoked.has(x.sessionId));
        });
      } finally {
        client.close();
      }
    }

    phase('checks: refusals');
    // ...and refused as a caller by every server (the restarted one too) while its SVID is otherwise valid.
    const fresh = ended.filter((s) => s.last.notAfter.getTime() > Date.now() + 15_000);
    assert.ok(fresh.length > 0, 'sessions ended at the end of the run still hold valid SVIDs');
    const refusals = new Map<string, number>();
    const asked = new Map<string, number>();
    const pending = fresh.flatMap((s) => everyServer.map((srv) => ({ s, srv })));
    const worker = async (): Promise<void> => {
      for (let job = pending.pop(); job !== undefined; job = pending.pop()) {
        const { s, srv } = job;
        // The checks take a while with 200 clients: an SVID that expires meanwhile is refused as expired, which
        // says nothing about its session. Only SVIDs still valid for a few seconds more are asked.
        if (s.last.notAfter.getTime() <= Date.now() + 5_000) continue;
        asked.set(srv.address, (asked.get(srv.address) ?? 0) + 1);
        const pub = connectPublic(srv.address, finalBundle.toPem(), TD, {
          key: s.last.privateKey,
          chain: s.last.chain.map((x) => x.der),
        });
        try {
          await renewCall(pub, newKey().csr);
          assert.fail(`server ${srv.address} renewed ended session ${s.sessionId}`);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          const code = codeOf(e);
          refusals.set(code, (refusals.get(code) ?? 0) + 1);
        } finally {
          pub.close();
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    assert.deepEqual(
      [...refusals.keys()].filter((k) => k !== 'ERR_SESSION_ENDED' && k !== 'ERR_REVOKED'),
      [],
      `refusals: ${JSON.stringify([...refusals])}`,
    );
    for (const srv of everyServer) {
      assert.ok(
        (asked.get(srv.address) ?? 0) >= Math.ceil(fresh.length / 2),
        `server ${srv.address} was asked about ${asked.get(srv.address) ?? 0} of ${fresh.length} ended sessions`,
      );
    }

    // A sample of spent tokens and redeemed grants, offered again to every server: the typed refusal.
    for (const t of attestedWith.slice(0, SAMPLE)) {
      for (const s of everyServer) {
        await assert.rejects(
          attestToServer({
            server: s.address,
            bundle: finalBundle,
            attestorType: 'join_token',
            evidence: Buffer.from(t.token),
          }),
          (e: unknown) => codeOf(e) === 'ERR_TOKEN_SPENT',
        );
      }
    }
    for (const g of grants.filter((x) => x.redeemedSessionId !== undefined).slice(0, SAMPLE)) {
      for (const s of everyServer) {
        await assert.rejects(
          redeemGrant({ source: g.child.source, server: s.address, key: g.key, revocations: false }),
          (e: unknown) => codeOf(e) === 'ERR_GRANT_REPLAYED',
        );
      }
    }

    phase('checks: audit');
    // Renewals still running would append records after the checkpoint `audit verify` has the server sign.
    await Promise.all(clients.map((c) => c.source.close()));
    // The audit trail: verified on every server, and an export verified with every server's own keys.
    const dir = tempDir('fault-audit');
    const bundles: string[] = [];
    for (const [i, s] of everyServer.entries()) {
      cliOk(await runCli(['audit', 'verify', '--server', '--socket', s.adminSocket]));
      const file = path.join(dir, `bundle-${i}.json`);
      fs.writeFileSync(
        file,
        cliOk(await runCli(['bundle', 'show', '--format', 'jwks', '--socket', s.adminSocket])).stdout,
      );
      bundles.push(file);
    }
    const exported = path.join(dir, 'chain.jsonl');
    fs.writeFileSync(
      exported,
      cliOk(await runCli(['audit', 'export', '--socket', servers[2]!.adminSocket])).stdout,
    );
    cliOk(await runCli(['audit', 'verify', '--file', exported, ...bundles.flatMap((b) => ['--bundle', b])]));
  });
});
