/**
 * The transport's ceiling for `scripts/bench-issuance.ts`: a bare grpc-js server on the same thread as the Lanyard
 * server, mTLS with P-256 certificates of a test PKI, one unary method whose handler does nothing but answer
 * with as many bytes as the client asks for. The bench's clients call it with requests and answers of a Renew's
 * size, over connections made like theirs (`lanyardChannelCredentials`, one connection per client, handshakes
 * before the clock). What Renew reaches against it is Lanyard's share; what it reaches itself is what grpc-js,
 * HTTP/2 and TLS cost on this machine with the clients beside the server.
 */
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { SERVER_ID_PATH } from '../src/internal/server-id';
import { createPki, issueSvid } from '../test/support/pki';

/** What the clients need to call the echo server as a Lanyard client would call Lanyard. */
export interface EchoTarget {
  address: string;
  /** The echo PKI's trust domain and bundle (its root), PEM. */
  trustDomain: string;
  bundlePem: string;
  /** A client SVID of that PKI: leaf and intermediate PEM, PKCS#8 key PEM (a throwaway bench key). */
  clientChainPem: string;
  clientKeyPem: string;
}

export const ECHO_PATH = '/lanyard.bench.v1.TransportEcho/Echo';

const bytes = (b: Buffer): Buffer => b;

/** The one method: raw bytes both ways, so no protobuf work is added that a Renew would not do. */
export const ECHO_SERVICE: grpc.ServiceDefinition = {
  echo: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes,
    requestDeserialize: bytes,
    responseSerialize: bytes,
    responseDeserialize: bytes,
  },
};

/**
 * A request of `requestBytes` that asks for an answer of `answerBytes`: the answer's size in its first four
 * bytes, the rest filler (a Renew's request is its CSR, a Renew's answer the SVID chain).
 */
export function echoRequest(requestBytes: number, answerBytes: number): Buffer {
  const req = Buffer.alloc(Math.max(4, requestBytes), 0x5a);
  req.writeUInt32BE(answerBytes, 0);
  return req;
}

const pem = (der: Uint8Array): string => new X509Certificate(der).toString();

export interface EchoServer {
  target: EchoTarget;
  close(): Promise<void>;
}

export async function startEchoServer(trustDomain: string): Promise<EchoServer> {
  const pki = createPki(trustDomain);
  const server = issueSvid(pki, `spiffe://${trustDomain}${SERVER_ID_PATH}`);
  const client = issueSvid(pki, `spiffe://${trustDomain}/bench/echo-client`);
  const answers = new Map<number, Buffer>();
  const answer = (size: number): Buffer => {
    let a = answers.get(size);
    if (a === undefined) answers.set(size, (a = Buffer.alloc(size, 0xa5)));
    return a;
  };
  const grpcServer = new grpc.Server({ 'grpc.enable_channelz': 0 });
  grpcServer.addService(ECHO_SERVICE, {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      const req = call.request;
      done(null, answer(req.length >= 4 ? Math.min(req.readUInt32BE(0), 1 << 20) : 0));
    },
  });
  const credentials = grpc.ServerCredentials.createSsl(
    Buffer.from(pem(pki.root.cert.der)),
    [
      {
        private_key: Buffer.from(server.key.privateKey.export({ type: 'pkcs8', format: 'pem' })),
        cert_chain: Buffer.from(server.chain.map((c) => pem(c.der)).join('')),
      },
    ],
    // Client certificates required and checked against the root, as the Lanyard server's listener does.
    true,
  );
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', credentials, (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    target: {
      address: `127.0.0.1:${port}`,
      trustDomain,
      bundlePem: pem(pki.root.cert.der),
      clientChainPem: client.chain.map((c) => pem(c.der)).join(''),
      clientKeyPem: client.key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    },
    close: () =>
      new Promise<void>((resolve) => {
        grpcServer.tryShutdown(() => resolve());
      }),
  };
}
