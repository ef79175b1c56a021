/**
 * A verifying express service: every request must come over mutual TLS from a workload of this trust domain
 * whose X509-SVID carries the `orders:read` scope. The service gets its own SVID from the Lanyard server (join
 * token attestation, renewed in the background) and serves with it; then, to show both answers, an agent calls
 * it: a reader (granted the scope) and another agent (not), each with an SVID of its own.
 *
 * Set up (see docs/library/verifier.md):
 *   lanyard entry create --spiffe-id spiffe://example.org/services/orders --selector unix:name:orders
 *   lanyard entry create --spiffe-id spiffe://example.org/agents/reader --selector unix:name:reader \
 *     --scope orders:read
 *   lanyard entry create --spiffe-id spiffe://example.org/agents/other --selector unix:name:other
 *   lanyard token create --spiffe-id ...   (one join token per workload)
 * Run: LANYARD_SERVER=127.0.0.1:8081 LANYARD_BUNDLE=bundle.pem LANYARD_TOKEN_SERVICE=... \
 *      LANYARD_TOKEN_READER=... LANYARD_TOKEN_OTHER=... node --import tsx examples/express-service.ts
 */
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { allOf, authorizeId, authorizeMemberOf, requireScopes, TrustDomain, X509Bundle } from 'lanyard';
import { ServerX509Source } from 'lanyard/client';
import { lanyardExpress, type HopExpressRequest } from 'lanyard/express';
import { followSource, HopHttpsAgent, tlsServerOptions } from 'lanyard/tls';

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
  const source = await attest(env('LANYARD_TOKEN_SERVICE'));
  const app = express();
  // Verifies the peer's SVID (path, profile, agent context, revocation) and authorizes it before any route.
  app.use(
    lanyardExpress({
      source,
      authorize: allOf(authorizeMemberOf(trustDomain), requireScopes('orders:read')),
    }),
  );
  app.get('/orders/:id', (req, res) => {
    const peer = (req as HopExpressRequest).agent!;
    res.json({ order: req.params.id, servedTo: peer.spiffeId, scopes: peer.context?.scopes ?? [] });
  });
  const listener = https.createServer(tlsServerOptions(source), app);
  const stopFollowing = followSource(listener, source); // new SVIDs and bundles without a restart
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = (listener.address() as AddressInfo).port;
  console.log(`orders service ${source.getX509Svid().id} on https://127.0.0.1:${port}`);

  // A caller: its agent verifies the service too (it must be exactly the orders service).
  const call = async (who: ServerX509Source): Promise<string> => {
    const agent = new HopHttpsAgent({ source: who, authorize: authorizeId(source.getX509Svid().id) });
    try {
      return await new Promise((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, path: '/orders/42', agent }, (res) => {
            let body = '';
            res.on('data', (chunk: Buffer) => (body += chunk.toString()));
            res.on('end', () => resolve(`${res.statusCode} ${body}`));
          })
          .on('error', reject);
      });
    } finally {
      agent.destroy();
    }
  };
  const callers = [await attest(env('LANYARD_TOKEN_READER')), await attest(env('LANYARD_TOKEN_OTHER'))];
  for (const caller of callers) console.log(`as ${caller.getX509Svid().id}: ${await call(caller)}`);

  stopFollowing();
  await new Promise((resolve) => listener.close(resolve));
  await Promise.all([source, ...callers].map((s) => s.close()));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
