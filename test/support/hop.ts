/**
 * Shared pieces of the hop tests: a real Lanyard server, workloads that get their SVIDs from it through a
 * ServerX509Source (join token attestation), foreign and test-controlled PKIs, and a decision recorder.
 */
import assert from 'node:assert/strict';
import { X509Bundle } from '../../src/bundle';
import { ServerX509Source } from '../../src/client/server-x509-source';
import { StaticX509Source } from '../../src/client/static-x509-source';
import { toX509Svid } from '../../src/svid/x509-svid';
import type { HopDecision } from '../../src/hop/decision';
import { TrustDomain } from '../../src/spiffe';
import { startTestServer, type TestServer } from './test-server';
import { type Svid } from './pki';

export const TD = 'lanyard.local';
export const id = (p: string): string => `spiffe://${TD}/${p}`;

export async function startLanyard(): Promise<TestServer> {
  return startTestServer();
}

export function serverBundle(s: TestServer): X509Bundle {
  return X509Bundle.fromPem(TrustDomain.parse(TD), s.running.ca.bundle().toPem());
}

/** Registers `name` (extra entry fields allowed) and starts a source attested with a fresh join token. */
export async function workloadSource(
  s: TestServer,
  name: string,
  fields: Record<string, unknown> = {},
  options: Partial<Parameters<typeof ServerX509Source.start>[0]> = {},
): Promise<ServerX509Source> {
  const spiffeId = id(name);
  await s.client.createEntry({
    entry: { spiffeId, selectors: [{ type: 'unix', value: `name:${name}` }], ...fields },
  });
  const { token } = await s.client.createJoinToken({ spiffeId });
  return ServerX509Source.start({
    server: s.running.publicAddress,
    bundle: serverBundle(s),
    attestorType: 'join_token',
    evidence: Buffer.from(token),
    retry: { initialMs: 100, maxMs: 1000 },
    ...options,
  });
}

/** A source holding an SVID minted by a test PKI (foreign or expired certificates), trusting `bundles`. */
export function pkiSource(svid: Svid, bundles: X509Bundle | X509Bundle[]): StaticX509Source {
  return new StaticX509Source(toX509Svid(svid.chain, svid.key.privateKey), bundles);
}

/** Collects HopDecisions; `next(pred)` resolves with the first (past or future) one matching. */
export class DecisionLog {
  readonly all: HopDecision[] = [];
  private waiters: { pred: (d: HopDecision) => boolean; resolve: (d: HopDecision) => void }[] = [];
  readonly listener = (d: HopDecision): void => {
    this.all.push(d);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(d)) return true;
      w.resolve(d);
      return false;
    });
  };
  next(pred: (d: HopDecision) => boolean): Promise<HopDecision> {
    const seen = this.all.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }
  denials(): HopDecision[] {
    return this.all.filter((d) => d.decision === 'deny');
  }
}

/** Polls `check` until it returns true; fails after `bound` ms (a generous bound, not a timing assertion). */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  bound = 10_000,
  what = 'condition',
): Promise<void> {
  const until = Date.now() + bound;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) assert.fail(`${what} did not hold within ${bound} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
