/**
 * Cost of Cedar policy at a hop and at issuance, beside the baselines measured in the same run: the
 * synchronous authorizers a service would use without a policy engine, and verifyX509Svid on a cached chain
 * (what every hop pays anyway). Figures, not assertions.
 *
 *   npx tsx scripts/bench-policy.ts [--seconds N]     (also part of npm run bench)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cedarHopPolicy, PolicyEngine } from '../src/policy';
import {
  allOf,
  authorizeId,
  requirePrincipal,
  requireScopes,
  verifyX509Svid,
  type VerifyX509SvidResult,
} from '../src/verify';
import { createPki, delegatedPair } from '../test/support/pki';

interface Figure {
  name: string;
  opsPerSec: number;
}

function measure(name: string, seconds: number, fn: () => void): Figure {
  const warmUntil = process.hrtime.bigint() + 100_000_000n;
  while (process.hrtime.bigint() < warmUntil) fn();
  const budget = BigInt(Math.round(seconds * 1e9));
  const start = process.hrtime.bigint();
  let ops = 0;
  let now = start;
  while (now - start < budget) {
    for (let i = 0; i < 8; i++) fn();
    ops += 8;
    now = process.hrtime.bigint();
  }
  const fig = { name, opsPerSec: ops / (Number(now - start) / 1e9) };
  const rate =
    fig.opsPerSec >= 100 ? Math.round(fig.opsPerSec).toLocaleString('en-US') : fig.opsPerSec.toFixed(1);
  process.stdout.write(`  ${name.padEnd(58)} ${rate.padStart(10)} /s\n`);
  return fig;
}

const SERVICE = 'spiffe://example.org/services/tools';
const OPERATION = '/demo.ToolService/Run';
const HOP_POLICY = `
@id("tools-for-planned-work")
permit (principal, action == Lanyard::Action::"call", resource == Lanyard::Service::"${SERVICE}")
when {
  context.operation == "${OPERATION}" &&
  principal.scopes.contains("tools:run") &&
  principal.rootPrincipal == "alice" &&
  principal.delegatedBy.contains("spiffe://example.org/agent/planner")
};
@id("no-admin")
forbid (principal, action == Lanyard::Action::"call", resource) when { context.operation like "*/Admin*" };
`;
const ISSUE_POLICY = `
@id("sessions-for-verified")
permit (principal, action == Lanyard::Action::"issue", resource)
when { context.kind == "session" && principal.principalProvenance == "verified" };
@id("no-refunds")
forbid (principal, action == Lanyard::Action::"issue", resource == Lanyard::Scope::"payments:refund");
`;

/** `count` more permits for other services: how evaluation scales with the size of the policy set. */
function manyPolicies(count: number): string {
  let text = HOP_POLICY;
  for (let i = 0; i < count; i++) {
    text += `@id("other-${i}")\npermit (principal, action == Lanyard::Action::"call", resource == Lanyard::Service::"spiffe://example.org/services/s${i}") when { principal.scopes.contains("s${i}:use") };\n`;
  }
  return text;
}

export async function runPolicyBench(seconds: number): Promise<void> {
  process.stdout.write('\nCedar policy (@cedar-policy/cedar-wasm) at a hop and at issuance\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-bench-policy-'));
  const engines: PolicyEngine[] = [];
  try {
    const pki = createPki('example.org');
    const pair = delegatedPair(
      pki,
      { name: 'planner', scopes: ['tools:run', 'tickets:read'], ttlSeconds: 600 },
      { name: 'tool-runner', scopes: ['tools:run'], ttlSeconds: 300 },
    );
    const peer: VerifyX509SvidResult = verifyX509Svid(pair.child.chain, pki.bundle);
    const load = (name: string, text: string, decisionCacheSize = 0): PolicyEngine => {
      fs.writeFileSync(path.join(dir, `${name}.cedar`), text);
      const e = PolicyEngine.load({
        sources: [path.join(dir, `${name}.cedar`)],
        watch: false,
        decisionCacheSize,
      });
      engines.push(e);
      return e;
    };
    // Without the decision cache unless said otherwise: these figures are what Cedar itself costs.
    const hop = load('hop', HOP_POLICY);
    const big = load('big', manyPolicies(200));
    const issue = load('issue', ISSUE_POLICY);
    const remembered = load('hop-cached', HOP_POLICY, 4096);
    const call = { peer, action: OPERATION, service: SERVICE, transport: 'grpc' };
    if (hop.evaluate(call).decision !== 'allow' || big.evaluate(call).decision !== 'allow') {
      throw new Error('the benchmark policies do not allow the benchmark request');
    }

    const authorizer = allOf(
      authorizeId('spiffe://example.org/agent/tool-runner'),
      requireScopes('tools:run'),
      requirePrincipal({ id: 'alice' }),
    );
    const baseline = measure('authorizers: id + scope + principal (no policy)', seconds, () =>
      authorizer(peer),
    );
    const verify = measure('verifyX509Svid cached (what every hop pays anyway)', seconds, () => {
      verifyX509Svid(pair.child.chain, pki.bundle);
    });
    const cedar = measure('Cedar hop decision, 2 policies', seconds, () => hop.evaluate(call));
    const cedarBig = measure('Cedar hop decision, 202 policies', seconds, () => big.evaluate(call));
    const cachedFig = measure('Cedar hop decision, same peer again (decision cache)', seconds, () =>
      remembered.evaluate(call),
    );
    const hook = cedarHopPolicy(remembered);
    const hookFig = measure('cedarHopPolicy hook, same peer again (what helpers call)', seconds, () => {
      void hook(peer, { transport: 'grpc', action: OPERATION, service: SERVICE });
    });
    const snapshot = issue.snapshot();
    const scopes = ['tools:run', 'tickets:read', 'payments:refund'];
    const issuance = measure('issuance: 3 scopes decided for one SVID', seconds, () => {
      snapshot.permittedScopes(peer, scopes, 'session');
    });

    process.stdout.write('\n');
    const ratio = (a: Figure, b: Figure, text: string): void => {
      process.stdout.write(`  ${text.padEnd(58)} ${(a.opsPerSec / b.opsPerSec).toFixed(3).padStart(10)}\n`);
    };
    ratio(cedar, baseline, 'Cedar decision / authorizers (rate ratio)');
    ratio(cedar, verify, 'Cedar decision / cached verify (rate ratio)');
    ratio(cedarBig, cedar, '202 policies / 2 policies (rate ratio)');
    ratio(cachedFig, cedar, 'remembered / fresh decision (rate ratio)');
    ratio(hookFig, cachedFig, 'hook / remembered decision (rate ratio)');
    ratio(issuance, cedar, '3-scope issuance / one hop decision (rate ratio)');
    const share = (policyRate: number): string =>
      `${(100 / policyRate / (1 / verify.opsPerSec + 1 / policyRate)).toFixed(0)}%`;
    process.stdout.write(
      `  share of a hop's verify + decide spent in the policy: ${share(cedar.opsPerSec)} for a new peer, ${share(
        cachedFig.opsPerSec,
      )} for a peer seen before\n`,
    );
  } finally {
    engines.forEach((e) => e.close());
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const i = process.argv.indexOf('--seconds');
  const seconds = i > 0 ? Number(process.argv[i + 1]) : 1;
  runPolicyBench(seconds).catch((e: unknown) => {
    process.stderr.write(`bench-policy failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
