/**
 * A workload's side of the public listener for tests, on the library's own client pieces: the channel
 * credentials of src/client/server-credentials.ts (trust the bundle, verify the server's SVID and its SPIFFE
 * ID; with an identity, mTLS) and the Attest stream of src/client/attest.ts, with test defaults.
 */
import * as grpc from '@grpc/grpc-js';
import type { KeyObject } from 'node:crypto';
import { X509Bundle } from '../../src/bundle';
import { runAttestStream } from '../../src/client/attest';
import { channelCredentialsPresenting, LANYARD_CHANNEL_OPTIONS } from '../../src/client/server-credentials';
import {
  AttestationServiceClient,
  AttestParams,
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
import type { MarshaledX509Svid } from '../../src/svid/x509-svid';
import { createCsr } from '../../src/x509/csr';
import { encodePem } from '../../src/x509/pem';
import { TrustDomain } from '../../src/spiffe';
import { generateSigningKeyPair } from '../../src/x509/keys';

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

/**
 * TLS trusting `bundlePem` and verifying the server's SVID (its SPIFFE ID, not a host name); with `identity`, mTLS,
 * presenting it as it is (the server's refusals of wrongly issued chains are what some tests are about).
 */
export function publicCredentials(
  bundlePem: string,
  trustDomain: string,
  identity?: ClientIdentity,
): grpc.ChannelCredentials {
  const bundle = X509Bundle.fromPem(TrustDomain.parse(trustDomain), bundlePem);
  return channelCredentialsPresenting(bundle, identity && marshalIdentity(identity));
}

/** A key and DER chain in the PEM form a TLS stack presents. */
export function marshalIdentity(identity: ClientIdentity): MarshaledX509Svid<string> {
  return {
    certificates: identity.chain.map((d) => encodePem('CERTIFICATE', d)).join(''),
    key: identity.key.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

export const PUBLIC_CHANNEL_OPTIONS = LANYARD_CHANNEL_OPTIONS;

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
  const { privateKey } = generateSigningKeyPair('ec-p256');
  return { key: privateKey, csr: Buffer.from(createCsr(privateKey).der) };
}

/**
 * One Attest stream (src/client/attest.ts) with the fields a test leaves out empty, so that bad input reaches
 * the server as written; a challenge is answered with `answer`.
 */
export function attest(
  client: AttestationServiceClient,
  params: Partial<AttestParams>,
  answer?: (challenge: Uint8Array) => Uint8Array,
): Promise<AttestResult> {
  return runAttestStream(client, {
    params: AttestParams.fromPartial(params),
    ...(answer !== undefined ? { answerChallenge: answer } : {}),
    deadlineMs: 15_000,
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
