/**
 * A delegation handoff: a root agent (the planner) starts a task session, grants part of it to a tool runner,
 * the tool runner redeems the grant and calls a service with the delegated SVID, and the service verifies the
 * whole chain — principal, planner, tool runner — from that one certificate before it answers.
 *
 *  1. planner: startSession -> a session SVID (the start of the chain, scopes narrowed to the task);
 *  2. tool runner: HandoffKey.generate() -> gives the planner only the key's hash;
 *  3. planner: grantFor(tool runner, that key, a subset of the scopes) -> the server records the signed grant;
 *  4. tool runner: redeemGrant -> a delegated SVID for that key, its context naming the planner's session;
 *  5. service: createHopHttpsServer verifies the SVID (each delegation link's signature, depth, scopes).
 *
 * Set up: entries for spiffe://example.org/agents/planner (--scope tickets:read --scope tickets:write
 * --delegate spiffe://example.org/agents/tool-runner --max-delegation-depth 1), .../agents/tool-runner
 * (--scope tickets:read) and .../services/tickets, a join token for each; then
 *   LANYARD_SERVER=127.0.0.1:8081 LANYARD_BUNDLE=bundle.pem LANYARD_TOKEN_PLANNER=... \
 *   LANYARD_TOKEN_TOOL_RUNNER=... LANYARD_TOKEN_SERVICE=... node --import tsx examples/delegation-handoff.ts
 */
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { allOf, authorizeId, maxDelegationDepth, requireScopes, TrustDomain, X509Bundle } from 'lanyard';
import { grantFor, HandoffKey, redeemGrant, ServerX509Source, startSession } from 'lanyard/client';
import { createHopHttpsServer, HopHttpsAgent } from 'lanyard/tls';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`set ${name}`);
  return value;
};
const server = env('LANYARD_SERVER');
const trustDomain = TrustDomain.parse(process.env.LANYARD_TRUST_DOMAIN ?? 'example.org');
const bundle = X509Bundle.load(trustDomain, env('LANYARD_BUNDLE'));
const attest = (token: string): Promise<ServerX509Source> =>
  ServerX509Source.start({ server, bundle, attestorType: 'join_token', evidence: Buffer.from(token) });

async function main(): Promise<void> {
  const planner = await attest(env('LANYARD_TOKEN_PLANNER'));
  const toolRunner = await attest(env('LANYARD_TOKEN_TOOL_RUNNER'));
  const service = await attest(env('LANYARD_TOKEN_SERVICE'));

  // The service: a delegated caller with tickets:read, at most one hop below its session's root.
  const tickets = createHopHttpsServer(
    { source: service, authorize: allOf(requireScopes('tickets:read'), maxDelegationDepth(1)) },
    (req, res, peer) => {
      const c = peer.context!;
      const chain = [c.principal.id, ...c.delegation.map((link) => link.spiffeId), peer.spiffeId];
      console.log(
        `service: ${req.method} ${req.url} for ${chain.join(' -> ')} (root session ${c.rootSessionId})`,
      );
      res.end(JSON.stringify({ open: 3, actingFor: c.principal.id }));
    },
  );
  await new Promise<void>((resolve) => tickets.listen(0, '127.0.0.1', resolve));
  const port = (tickets.address() as AddressInfo).port;

  const session = await startSession({
    server,
    source: planner,
    intent: 'triage tickets',
    scopes: ['tickets:read'],
  });
  console.log(
    `planner: session ${session.sessionId}, scopes ${session.getX509Svid().context?.scopes.join(',')}`,
  );
  const key = HandoffKey.generate(); // the tool runner's key: only its hash leaves the tool runner
  await grantFor({
    server,
    source: session,
    childId: toolRunner.getX509Svid().id.toString(),
    childKey: key.id,
    scopes: ['tickets:read'],
  });
  const delegated = await redeemGrant({ server, source: toolRunner, key });
  const link = delegated.getX509Svid().context!.delegation.at(-1)!;
  console.log(`tool-runner: delegated SVID from ${link.spiffeId} (session ${link.sessionId})`);

  const agent = new HopHttpsAgent({ source: delegated, authorize: authorizeId(service.getX509Svid().id) });
  const reply = await new Promise<string>((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/tickets/open', agent }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
      })
      .on('error', reject);
  });
  console.log(`tool-runner: service answered ${reply}`);

  agent.destroy();
  await new Promise((resolve) => tickets.close(resolve));
  await Promise.all([delegated, session, planner, toolRunner, service].map((s) => s.close()));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
