/**
 * A gRPC hop verified at both ends: the service accepts a call only from a workload it authorizes (here: the
 * planner agent), and the caller accepts only the service it meant to reach. Both take their SVIDs from the
 * Lanyard server (join token attestation, renewed in the background); the credentials follow each renewal.
 * The handler reads the verified caller, with its agent context, from the call.
 *
 * Set up: entries for spiffe://example.org/services/search and spiffe://example.org/agents/planner (with
 * `--scope search:query`), a join token for each; then
 *   LANYARD_SERVER=127.0.0.1:8081 LANYARD_BUNDLE=bundle.pem LANYARD_TOKEN_SERVICE=... \
 *   LANYARD_TOKEN_CALLER=... node --import tsx examples/grpc-hop.ts
 */
import * as grpc from '@grpc/grpc-js';
import { authorizeId, requireScopes, allOf, TrustDomain, X509Bundle } from 'lanyard';
import { ServerX509Source } from 'lanyard/client';
import {
  HOP_CHANNEL_OPTIONS,
  hopChannelCredentials,
  hopPeerOf,
  hopServerCredentials,
  hopService,
} from 'lanyard/grpc';

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

// One unary method, JSON-encoded to keep the example free of generated code; any grpc-js service works.
interface Query {
  text: string;
}
interface Answer {
  hits: string[];
  caller: string;
}
const json = <T>() => ({
  serialize: (v: T): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): T => JSON.parse(b.toString()) as T,
});
const SEARCH: grpc.ServiceDefinition = {
  query: {
    path: '/example.Search/Query',
    requestStream: false,
    responseStream: false,
    requestSerialize: json<Query>().serialize,
    requestDeserialize: json<Query>().deserialize,
    responseSerialize: json<Answer>().serialize,
    responseDeserialize: json<Answer>().deserialize,
  },
};

async function main(): Promise<void> {
  const [service, planner] = [
    await attest(env('LANYARD_TOKEN_SERVICE')),
    await attest(env('LANYARD_TOKEN_CALLER')),
  ];
  const plannerId = planner.getX509Svid().id;

  const grpcServer = new grpc.Server();
  const query = (call: grpc.ServerUnaryCall<Query, Answer>, done: grpc.sendUnaryData<Answer>): void => {
    const peer = hopPeerOf(call)!; // set by hopService once the caller is verified and authorized
    console.log(
      `service: ${peer.spiffeId} asked "${call.request.text}" (scopes ${peer.context?.scopes.join(',')})`,
    );
    done(null, { hits: [`result for ${call.request.text}`], caller: peer.spiffeId });
  };
  const authorize = allOf(authorizeId(plannerId), requireScopes('search:query'));
  grpcServer.addService(SEARCH, hopService(SEARCH, { query }, { source: service, authorize }));
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', hopServerCredentials(service), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );

  const credentials = hopChannelCredentials({
    source: planner,
    authorize: authorizeId(service.getX509Svid().id),
  });
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials, HOP_CHANNEL_OPTIONS);
  const answer = await new Promise<Answer>((resolve, reject) =>
    client.makeUnaryRequest(
      SEARCH.query!.path,
      json<Query>().serialize,
      json<Answer>().deserialize,
      { text: 'open tickets' },
      (e, r) => (e ? reject(e) : resolve(r!)),
    ),
  );
  console.log(`planner: ${service.getX509Svid().id} answered ${JSON.stringify(answer.hits)}`);

  client.close();
  await new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
  await Promise.all([service.close(), planner.close()]);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
