/**
 * Session SVIDs through the agent: AgentSessionService on the Workload API socket forwards StartSession to
 * the server as the calling workload (with its agent-held SVID), so the server's own rules apply.
 */
import * as assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { X509Bundle } from '../../../src/bundle';
import {
  AgentSessionServiceClient,
  type AgentSessionServiceStartSessionResponse,
} from '../../../src/gen/lanyard/v1/agent_session';
import type { StartSessionRequest } from '../../../src/gen/lanyard/v1/session';
import { AttestationServiceClient, type RenewResponse } from '../../../src/gen/lanyard/v1/attestation';
import {
  channelCredentialsPresenting,
  LANYARD_CHANNEL_OPTIONS,
} from '../../../src/client/server-credentials';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { createCsr } from '../../../src/x509/csr';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { marshalIdentity } from '../../support/public-client';
import { startTestServer, type TestServer } from '../../support/test-server';
import { AGENT_ID, TD, header, startAgentFor, type AgentFixture } from '../../support/agent';

const WORKLOAD_ID = `spiffe://${TD}/workload/planner`;

describe('node agent: task sessions through AgentSessionService', function () {
  this.timeout(60_000);
  let s: TestServer;
  let a: AgentFixture;
  let client: AgentSessionServiceClient;

  const start = (
    session: Partial<StartSessionRequest>,
    spiffeId = '',
    md = header(),
  ): Promise<AgentSessionServiceStartSessionResponse> =>
    new Promise((resolve, reject) =>
      client.startSession(
        {
          spiffeId,
          session: {
            intent: 'summarise open tickets',
            scopes: [],
            ttlSeconds: 0,
            csr: Buffer.alloc(0),
            principal: undefined,
            ...session,
          },
        },
        md,
        (e, r) => (e ? reject(e) : resolve(r)),
      ),
    );

  before(async () => {
    s = await startTestServer();
    await s.client.createEntry({
      entry: {
        spiffeId: WORKLOAD_ID,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
        allowedScopes: ['tickets:read'],
      },
    });
    a = await startAgentFor(s);
    client = new AgentSessionServiceClient(`unix://${a.socketPath}`, grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    await a?.close();
    await s?.stop();
  });

  it('starts a session for the workload with its own key; scopes are narrowed by the server', async () => {
    const { privateKey } = generateSigningKeyPair('ec-p256');
    const res = await start({
      scopes: ['tickets:read', 'payments:refund'],
      csr: Buffer.from(createCsr(privateKey).der),
    });
    const chain = res.session!.svid!.certChain.map((b) => new Uint8Array(b));
    const bundle = X509Bundle.fromDer(
      TrustDomain.parse(TD),
      res.session!.bundle!.x509Authorities.map((b) => new Uint8Array(b)),
    );
    const v = verifyX509Svid(chain, bundle);
    assert.equal(v.id.toString(), WORKLOAD_ID);
    assert.equal(v.context?.sessionId, res.session!.sessionId);
    assert.deepEqual(v.context?.scopes, ['tickets:read']);
    assert.equal(v.context?.principal.provenance, 'workload');
    assert.equal(v.context?.intent, 'summarise open tickets');
    // The session key is the workload's: the agent only passed the CSR on.
    assert.ok(
      Buffer.from(v.chain[0]!.spkiDer).equals(
        Buffer.from(createPublicKey(privateKey).export({ format: 'der', type: 'spki' })),
      ),
    );
  });

  it('a session SVID started through the agent renews directly with the server; the agent-issued workload SVID does not', async () => {
    const { privateKey } = generateSigningKeyPair('ec-p256');
    const res = await start({ scopes: ['tickets:read'], csr: Buffer.from(createCsr(privateKey).der) });
    const sessionChain = res.session!.svid!.certChain.map((b) => new Uint8Array(b));
    const renewWith = (key: KeyObject, chain: Uint8Array[]): Promise<RenewResponse> => {
      const c = new AttestationServiceClient(
        s.running.publicAddress,
        channelCredentialsPresenting(s.running.ca.bundle(), marshalIdentity({ key, chain })),
        LANYARD_CHANNEL_OPTIONS,
      );
      const next = generateSigningKeyPair('ec-p256').privateKey;
      return new Promise<RenewResponse>((resolve, reject) =>
        c.renew({ csr: Buffer.from(createCsr(next).der) }, (e, r) => (e ? reject(e) : resolve(r))),
      ).finally(() => c.close());
    };
    const renewed = await renewWith(privateKey, sessionChain);
    assert.equal(renewed.svid!.spiffeId, WORKLOAD_ID);

    const held = a.agent.cache.entries().map((e) => a.agent.cache.svid(e.id)!)[0]!;
    const refused = (await renewWith(
      held.privateKey,
      held.chain.map((c) => c.der),
    ).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    assert.equal(refused.code, grpc.status.PERMISSION_DENIED);
    assert.match(refused.details, /node agent/);
  });

  it("refuses without the header, for an identity the caller is not entitled to, and relays the server's refusals", async () => {
    const { privateKey } = generateSigningKeyPair('ec-p256');
    const csr = Buffer.from(createCsr(privateKey).der);
    const noHeader = await start({ csr }, '', new grpc.Metadata()).catch((e: grpc.ServiceError) => e);
    assert.equal((noHeader as grpc.ServiceError).code, grpc.status.INVALID_ARGUMENT);

    const other = await start({ csr }, `spiffe://${TD}/workload/someone-else`).catch(
      (e: grpc.ServiceError) => e,
    );
    assert.equal((other as grpc.ServiceError).code, grpc.status.PERMISSION_DENIED);

    // The entry lacks can_assert_principal: the server refuses, and the workload sees the server's code.
    const asserted = (await start({
      csr,
      principal: { evidence: { $case: 'assertedId', value: 'alice' } },
    }).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    assert.equal(asserted.code, grpc.status.PERMISSION_DENIED);
    assert.deepEqual(asserted.metadata.get('lanyard-error-code'), ['ERR_PRINCIPAL_ASSERTION_NOT_ALLOWED']);
  });
});
