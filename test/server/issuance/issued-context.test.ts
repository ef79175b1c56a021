/**
 * The leaf issuance returns carries the agent context it was signed with (SignedLeaf.agentContext), and the
 * audit record of the call takes its fields from it instead of decoding the extension just encoded: the record
 * must be the same JSON as before (a decode of the leaf's extension, and a parse of the certificate), whether
 * the leaf was signed on the calling thread or in a signing worker. Real CA, real workers, real store.
 */
import assert from 'node:assert/strict';
import type { CaManager, SignedX509Svid } from '../../../src/ca';
import { signedLeafFields, svidFields } from '../../../src/server/audit/svid-fields';
import { signSessionSvid } from '../../../src/server/issuance/session-svid';
import { issueWorkloadSvid } from '../../../src/server/issuance/workload-svid';
import type { Entry } from '../../../src/store/types';
import type { AgentContext } from '../../../src/x509/agent-context/types';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { DataDir, TD } from '../../support/ca';
import { T0 } from '../../support/clock';
import { baseContext, createPki, plannerChain } from '../../support/pki';
import { removeDir, tempDir } from '../../support/tmp';

const entry: Entry = {
  id: 'entry-1',
  spiffeId: `spiffe://${TD}/agent/planner`,
  parentId: `spiffe://${TD}/agent/node`,
  selectors: [{ type: 'unix', value: 'uid:1000' }],
  x509SvidTtlSeconds: 300,
  allowedScopes: ['docs:read'],
  maxDelegationDepth: 2,
  allowedDelegates: [],
  admin: false,
  dnsNames: ['planner.example.org'],
  canAssertPrincipal: false,
  createdAt: T0,
  updatedAt: T0,
  revision: 1,
};

/** The record as it was before the leaf carried its context: a decode of the extension the leaf names. */
function decodedRecord(signed: SignedX509Svid): string {
  const { agentContext: _carried, ...leaf } = signed.leaf;
  return JSON.stringify(signedLeafFields(leaf));
}

for (const signingWorkers of [0, 1]) {
  describe(`issuance carries the signed agent context (${signingWorkers} signing workers)`, function () {
    this.timeout(60_000);
    let dir: string;
    let d: DataDir;
    let ca: CaManager;
    let contexts: AgentContext[];
    before(async () => {
      dir = tempDir('issued-context');
      d = new DataDir(dir);
      ({ ca } = await d.start({ signingWorkers }));
      // One root session, and the last hop of a delegated chain (its record names the parent link).
      contexts = [
        baseContext({ sessionId: 'session-root', scopes: ['docs:read', 'docs:write'] }),
        plannerChain(createPki(TD)).at(-1)!.context!,
      ];
      assert.ok(contexts[1]!.delegation.length > 0);
    });
    after(async () => {
      await d.stop();
      removeDir(dir);
    });

    const issuers = {
      workload: (context: AgentContext) =>
        issueWorkloadSvid(ca, {
          entry,
          publicKey: generateSigningKeyPair('ec-p256').publicKey,
          context,
          defaultTtlSeconds: 600,
          now: T0,
        }),
      session: (context: AgentContext) =>
        signSessionSvid(ca, {
          entry,
          publicKey: generateSigningKeyPair('ec-p256').publicKey,
          context,
          ttlSeconds: 120,
          now: T0,
        }),
    };
    for (const [kind, issue] of Object.entries(issuers)) {
      it(`a ${kind} SVID: the caller's context on the leaf, the same record JSON as a decode and a parse`, async () => {
        for (const context of contexts) {
          const signed = await issue(context);
          assert.equal(signed.leaf.agentContext, context, "the leaf carries the caller's context");
          const record = JSON.stringify(signedLeafFields(signed.leaf));
          assert.equal(record, decodedRecord(signed));
          assert.equal(record, JSON.stringify(svidFields(signed.chain[0])));
          assert.equal(JSON.parse(record).sessionId, context.sessionId);
        }
      });
    }
  });
}
