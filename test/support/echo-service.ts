/** A tiny gRPC service for the hop tests (JSON on the wire): a unary Echo and a bidi Chat. */
import * as grpc from '@grpc/grpc-js';

export interface Msg {
  text: string;
}

const ser = (v: Msg): Buffer => Buffer.from(JSON.stringify(v));
const de = (b: Buffer): Msg => JSON.parse(b.toString()) as Msg;

export const EchoService = {
  echo: {
    path: '/lanyard.test.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: ser,
    requestDeserialize: de,
    responseSerialize: ser,
    responseDeserialize: de,
  },
  chat: {
    path: '/lanyard.test.Echo/Chat',
    requestStream: true,
    responseStream: true,
    requestSerialize: ser,
    requestDeserialize: de,
    responseSerialize: ser,
    responseDeserialize: de,
  },
} satisfies grpc.ServiceDefinition;

export const EchoClient = grpc.makeGenericClientConstructor(EchoService, 'Echo');

export interface EchoClientApi extends grpc.Client {
  echo(
    req: Msg,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r?: Msg) => void,
  ): void;
  chat(): grpc.ClientDuplexStream<Msg, Msg>;
}

export function echo(client: EchoClientApi, text: string): Promise<Msg> {
  return new Promise((resolve, reject) =>
    client.echo({ text }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, r) =>
      e ? reject(e) : resolve(r!),
    ),
  );
}
