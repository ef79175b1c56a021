/** Agents with workload and session SVIDs against a real test server, for the revocation tests. */
import type { KeyObject } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { signGrant, type GrantParams } from '../../src/client/delegation';
import {
  type CreateGrantResponse,
  type RedeemGrantResponse,
  SessionServiceClient,
  StartSessionRequest,
  type StartSessionResponse,
} from '../../src/gen/lanyard/v1/session';
import { ParsedCertificate } from '../../src/x509/certificate';
import type { TestServer } from './helpers';
import { attest, connectPublic, newKey, publicCredentials, PUBLIC_CHANNEL_OPTIONS } from './public-client';

export const TD = 'lanyard.local';
export const id = (p: string): string => `spiffe://${TD}/${p}`;

export interface Agent {
  spiffeId: string;
  key: KeyObject;
  chain: Uint8Array[];
}

export function unary<Req, Res>(
  fn: (
    req: Req,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (e: grpc.ServiceError | null, r: Res) => void,
  ) => void,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(e) : resolve(r)));
  });
}

export function sessionClient(s: TestServer, who?: Agent): SessionServiceClient {
  const bundlePem = s.running.ca.bundle().toPem();
  return new SessionServiceClient(
    s.running.publicAddress,
    publicCredentials(bundlePem, TD, who),
    PUBLIC_CHANNEL_OPTIONS,
  );
}

/** Registers an entry and attests it with a join token: the agent's workload SVID. */
export async function register(
  s: TestServer,
  name: string,
  fields: Record<string, unknown> = {},
): Promise<Agent> {
  const spiffeId = id(name);
  await s.client.createEntry({
    entry: { spiffeId, selectors: [{ type: 'unix', value: `name:${name}` }], ...fields },
  });
  const { token } = await s.client.createJoinToken({ spiffeId });
  const { key, csr } = newKey();
  const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD);
  try {
    const r = await attest(pub.attestation, {
      attestorType: 'join_token',
      evidence: Buffer.from(token),
      csr,
    });
    return { spiffeId, key, chain: r.svid!.certChain.map((b) => new Uint8Array(b)) };
  } finally {
    pub.close();
  }
}

export async function startSession(
  s: TestServer,
  agent: Agent,
  req: { scopes?: string[]; intent?: string } = {},
): Promise<{ agent: Agent; res: StartSessionResponse }> {
  const c = sessionClient(s, agent);
  try {
    const { key, csr } = newKey();
    const res = await unary(c.startSession.bind(c), StartSessionRequest.fromPartial({ csr, ...req }));
    return { agent: { ...agent, key, chain: res.svid!.certChain.map((b) => new Uint8Array(b)) }, res };
  } finally {
    c.close();
  }
}

/** The parent (holding a session SVID) signs a grant for `childId` and registers it with CreateGrant. */
export async function createGrant(
  s: TestServer,
  parent: Agent,
  params: Omit<GrantParams, 'parentCert' | 'parentKey'>,
): Promise<CreateGrantResponse> {
  const signed = signGrant({ parentCert: parent.chain[0]!, parentKey: parent.key, ...params });
  const c = sessionClient(s, parent);
  try {
    return await unary(c.createGrant.bind(c), {
      binding: Buffer.from(signed.bindingDer),
      signature: Buffer.from(signed.signature),
    });
  } finally {
    c.close();
  }
}

/** The child redeems a grant with the SVID it presents (its workload SVID); returns its delegated session. */
export async function redeemGrant(
  s: TestServer,
  child: Agent,
  grantId: string,
): Promise<{ agent: Agent; res: RedeemGrantResponse }> {
  const c = sessionClient(s, child);
  try {
    const { key, csr } = newKey();
    const res = await unary(c.redeemGrant.bind(c), { grantId, csr });
    return { agent: { ...child, key, chain: res.svid!.certChain.map((b) => new Uint8Array(b)) }, res };
  } finally {
    c.close();
  }
}

/** The serial (lowercase hex) of an agent's current certificate. */
export function serialOf(agent: Agent): string {
  return ParsedCertificate.fromDer(agent.chain[0]!).serialHex;
}
