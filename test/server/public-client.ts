/**
 * A workload's side of the public listener for tests: TLS that trusts the bundle and checks the server's
 * SPIFFE ID (no DNS name), optionally with a client SVID for mTLS; Attest as a promise.
 */
import * as grpc from '@grpc/grpc-js';
import type { KeyObject } from 'node:crypto';
import {
  AttestationServiceClient,
  type AttestParams,
  type AttestRequest,
  type AttestResponse,
  type AttestResult,
  RenewRequest,
  type RenewResponse,
} from '../../src/gen/lanyard/v1/attestation';
import {
  BundleServiceClient,
  type GetBundleResponse,
  type WatchBundleResponse,
} from '../../src/gen/lanyard/v1/bundle';
import { RegistrationServiceClient } from '../../src/gen/lanyard/v1/registration';
import { createCsr } from '../../src/x509/csr';
import { generateKeyPair } from '../../src/x509/keys';
import { encodePem } from '../../src/x509/pem';

export interface ClientIdentity {
  key: KeyObject;
  chain: readonly Uint8Array[];
}

export interface PublicClients {
  attestation: AttestationServiceClient;
  bundle: BundleServiceClient;
  registration: RegistrationServiceClient;
  close(): void;
}

/** TLS trusting `bundlePem` and checking the server's SPIFFE ID; with `identity`, mTLS. */
export function publicCredentials(
  bundlePem: string,
  trustDomain: string,
  identity?: ClientIdentity,
): grpc.ChannelCredentials {
  const serverId = `URI:spiffe://${trustDomain}/lanyard/server`;
  return grpc.credentials.createSsl(
    Buffer.from(bundlePem),
    identity ? Buffer.from(identity.key.export({ type: 'pkcs8', format: 'pem' })) : null,
    identity ? Buffer.from(identity.chain.map((d) => encodePem('CERTIFICATE', d)).join('')) : null,
    {
      // The server SVID has a SPIFFE ID, not a host name: check that instead.
      checkServerIdentity: (_host, cert) =>
        (cert.subjectaltname ?? '').split(', ').includes(serverId)
          ? undefined
          : new Error(`server is not ${serverId}: ${cert.subjectaltname ?? 'no SAN'}`),
    },
  );
}

/** SNI with a name, not the IP address (RFC 6066); the server's identity is checked by publicCredentials. */
export const PUBLIC_CHANNEL_OPTIONS = { 'grpc.ssl_target_name_override': 'lanyard-server' };

export function connectPublic(
  address: string,
  bundlePem: string,
  trustDomain: string,
  identity?: ClientIdentity,
): PublicClients {
  const creds = publicCredentials(bundlePem, trustDomain, identity);
  const options = PUBLIC_CHANNEL_OPTIONS;
  const attestation = new AttestationServiceClient(address, creds, options);
  const bundle = new BundleServiceClient(address, creds, options);
  const registration = new RegistrationServiceClient(address, creds, options);
  return {
    attestation,
    bundle,
    registration,
    close() {
      attestation.close();
      bundle.close();
      registration.close();
    },
  };
}

/** A fresh workload key and its CSR. */
export function newKey(): { key: KeyObject; csr: Buffer } {
  const { privateKey } = generateKeyPair('ec-p256');
  return { key: privateKey, csr: Buffer.from(createCsr(privateKey).der) };
}

/**
 * Runs one Attest stream: sends params (and `extra` raw requests after them), answers challenges with
 * `answer`, resolves with the result or rejects with the ServiceError.
 */
export function attest(
  client: AttestationServiceClient,
  params: Partial<AttestParams>,
  answer?: (challenge: Buffer) => Buffer,
  extra: AttestRequest[] = [],
): Promise<AttestResult> {
  return new Promise((resolve, reject) => {
    const call = client.attest({ deadline: Date.now() + 15_000 });
    let result: AttestResult | undefined;
    call.on('data', (res: AttestResponse) => {
      if (res.step?.$case === 'challenge' && answer) {
        call.write({ step: { $case: 'challengeResponse', value: answer(res.step.value.challenge) } });
      } else if (res.step?.$case === 'result') {
        result = res.step.value;
      }
    });
    call.on('error', reject);
    call.on('end', () => (result ? resolve(result) : reject(new Error('stream ended without a result'))));
    call.write({
      step: {
        $case: 'params',
        value: { attestorType: '', evidence: Buffer.alloc(0), csr: Buffer.alloc(0), spiffeId: '', ...params },
      },
    });
    for (const r of extra) call.write(r);
    if (!answer) call.end();
  });
}

export function renewCall(clients: PublicClients, csr: Buffer): Promise<RenewResponse> {
  return new Promise((resolve, reject) => {
    clients.attestation.renew(
      RenewRequest.fromPartial({ csr }),
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
  });
}

export function getBundle(clients: PublicClients): Promise<GetBundleResponse> {
  return new Promise((resolve, reject) => {
    clients.bundle.getBundle({ trustDomain: '' }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Opens WatchBundle and collects every message; `next(n)` waits until at least n arrived. */
export function watchBundle(clients: PublicClients): {
  messages: WatchBundleResponse[];
  next(count: number): Promise<WatchBundleResponse>;
  cancel(): void;
} {
  const messages: WatchBundleResponse[] = [];
  const waiters: (() => void)[] = [];
  const call = clients.bundle.watchBundle({ trustDomain: '' });
  call.on('data', (m: WatchBundleResponse) => {
    messages.push(m);
    for (const w of waiters.splice(0)) w();
  });
  call.on('error', () => undefined);
  return {
    messages,
    next(count) {
      return new Promise((resolve) => {
        const check = (): void => {
          const m = messages[count - 1];
          if (m !== undefined) resolve(m);
          else waiters.push(check);
        };
        check();
      });
    },
    cancel: () => call.cancel(),
  };
}

/** Asserts a gRPC failure with `code` whose details mention every fragment. */
export async function rejectsGrpc(
  p: Promise<unknown>,
  code: grpc.status,
  ...fragments: string[]
): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (err.code !== code)
      throw new Error(`expected ${grpc.status[code]}, got ${grpc.status[err.code]}: ${err.details}`);
    for (const f of fragments) {
      if (!err.details.includes(f)) throw new Error(`"${err.details}" lacks "${f}"`);
    }
    return err;
  }
  throw new Error(`expected gRPC status ${grpc.status[code]}, but the call succeeded`);
}
