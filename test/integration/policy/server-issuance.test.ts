/**
 * The issuance policy on a real server (127.0.0.1:0, SQLite, real crypto): the policy decides which of the
 * scopes an entry allows go into workload, session and delegated SVIDs, for which principal; the SVIDs carry
 * the policy set's version; an edit on disk applies to the next issuance; a broken edit keeps the last good
 * set; a broken policy at start stops the start naming the file.
 */
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { signGrant } from '../../../src/client/delegation';
import {
  channelCredentialsPresenting,
  LANYARD_CHANNEL_OPTIONS,
} from '../../../src/client/server-credentials';
import { NodeServiceClient } from '../../../src/gen/lanyard/v1/node';
import { ErrorCode, LanyardError } from '../../../src/errors';
import { StartSessionRequest } from '../../../src/gen/lanyard/v1/session';
import { loadConfig } from '../../../src/server/config';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid, type VerifyX509SvidResult } from '../../../src/verify';
import { createCsr } from '../../../src/x509/csr';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { issuerKey, jwksOf, signJwt } from '../../support/jwt';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { connectPublic, marshalIdentity, newKey, renewCall } from '../../support/public-client';
import { type Agent, id, register, sessionClient, TD, unary } from '../../support/sessions';
import { writeAtomically } from '../../policy/helpers';
import { removeDir } from '../../support/tmp';

const IDP = 'https://idp.example.com';

/** A CSR for an existing key (a session renews with its own key). */
function newKeyFor(key: KeyObject): { csr: Buffer } {
  return { csr: Buffer.from(createCsr(key).der) };
}

const POLICY = `
@id("workloads-read-docs")
permit (principal, action == Lanyard::Action::"issue", resource == Lanyard::Scope::"docs:read")
when { context.kind == "workload" };

@id("alice-sessions-read-docs")
permit (principal, action == Lanyard::Action::"issue", resource == Lanyard::Scope::"docs:read")
when { context.kind == "session" && principal.rootPrincipal == "alice" && principal.principalProvenance == "verified" };

@id("alice-runs-tools")
permit (principal, action == Lanyard::Action::"issue", resource == Lanyard::Scope::"tools:run")
when { principal.rootPrincipal == "alice" && (context.kind == "session" || principal.delegatedBy.contains("${id('planner')}")) };
`;
const ALICE_MAY_WRITE = `
@id("alice-sessions-write-docs")
permit (principal, action == Lanyard::Action::"issue", resource == Lanyard::Scope::"docs:write")
when { context.kind == "session" && principal.rootPrincipal == "alice" };
`;

describe('policy: issuance on a real server (policy.files)', function () {
  this.timeout(60_000);
  const policyDir = tempDataDir();
  const policyFile = path.join(policyDir, 'issuance.cedar');
  const idpKey = issuerKey('ES256');
  const jwksFile = path.join(policyDir, 'idp.json');
  let s: TestServer;
  let planner: Agent;
  let toolRunner: Agent;

  const token = (sub: string): string =>
    signJwt({ iss: IDP, aud: 'lanyard', sub, exp: Math.floor(Date.now() / 1000) + 300 }, idpKey);
  const bundle = (): X509Bundle => X509Bundle.fromPem(TrustDomain.parse(TD), s.running.ca.bundle().toPem());
  const verify = (chain: Uint8Array[]): VerifyX509SvidResult =>
    verifyX509Svid(chain, bundle(), { cache: null });

  const startSession = async (
    agent: Agent,
    sub: string,
    scopes: string[],
  ): Promise<{ agent: Agent; scopes: string[]; svid: VerifyX509SvidResult }> => {
    const c = sessionClient(s, agent);
    try {
      const { key, csr } = newKey();
      const res = await unary(
        c.startSession.bind(c),
        StartSessionRequest.fromPartial({
          csr,
          scopes,
          intent: 'summarise tickets',
          principal: { evidence: { $case: 'token', value: token(sub) } },
        }),
      );
      const chain = res.svid!.certChain.map((b) => new Uint8Array(b));
      return { agent: { ...agent, key, chain }, scopes: res.scopes, svid: verify(chain) };
    } finally {
      c.close();
    }
  };

  before(async () => {
    fs.writeFileSync(policyFile, POLICY);
    fs.writeFileSync(jwksFile, jwksOf(idpKey));
    s = await startTestServer({
      config: {
        principalIssuers: [{ issuer: IDP, audience: 'lanyard', jwksFile }],
        policyFiles: [policyDir],
      },
    });
    planner = await register(s, 'planner', {
      allowedScopes: ['docs:read', 'docs:write', 'tools:run'],
      allowedDelegates: [id('tool-runner')],
      maxDelegationDepth: 2,
    });
    toolRunner = await register(s, 'tool-runner', { allowedScopes: ['docs:read', 'tools:run'] });
  });
  after(async () => {
    await s.stop();
    removeDir(s.dir);
    removeDir(policyDir);
  });

  it('a workload SVID gets the entry scopes the policy permits, and the policy version', () => {
    const v = verify(planner.chain);
    assert.deepEqual(v.context!.scopes, ['docs:read']);
    assert.match(s.running.policy!.version, /^sha256:[0-9a-f]{32}$/);
    assert.equal(v.context!.policyVersion, s.running.policy!.version);
  });

  it('StartSession grants requested ∩ entry ∩ policy: alice gets docs:read and tools:run, bob neither', async () => {
    const alice = await startSession(planner, 'alice', ['docs:read', 'docs:write', 'tools:run', 'admin:all']);
    assert.deepEqual(alice.scopes, ['docs:read', 'tools:run']);
    assert.deepEqual(alice.svid.context!.scopes, ['docs:read', 'tools:run']);
    assert.equal(alice.svid.context!.policyVersion, s.running.policy!.version);
    const bob = await startSession(planner, 'bob', ['docs:read', 'tools:run']);
    assert.deepEqual(bob.scopes, []);
    assert.deepEqual(bob.svid.context!.scopes, []);
  });

  it('RedeemGrant narrows the granted scopes by policy; the delegated SVID still verifies offline', async () => {
    const alice = await startSession(planner, 'alice', ['docs:read', 'tools:run']);
    const key = generateSigningKeyPair('ec-p256');
    const signed = signGrant({
      parentCert: alice.agent.chain[0]!,
      parentKey: alice.agent.key,
      childId: id('tool-runner'),
      childKey: key.publicKey,
      scopes: ['docs:read', 'tools:run'],
    });
    const pc = sessionClient(s, alice.agent);
    const grant = await unary(pc.createGrant.bind(pc), {
      binding: Buffer.from(signed.bindingDer),
      signature: Buffer.from(signed.signature),
    });
    pc.close();
    const cc = sessionClient(s, toolRunner);
    const res = await unary(cc.redeemGrant.bind(cc), {
      grantId: grant.grantId,
      foreignGrant: undefined,
      csr: Buffer.from(createCsr(key.privateKey).der),
    });
    cc.close();
    const child = verify(res.svid!.certChain.map((b) => new Uint8Array(b)));
    // docs:read is permitted to alice's sessions and workloads, not to delegations: only tools:run passes.
    assert.deepEqual(child.context!.scopes, ['tools:run']);
    assert.deepEqual(child.context!.delegation[0]!.binding.scopes, ['docs:read', 'tools:run']);
    assert.equal(child.context!.policyVersion, s.running.policy!.version);
  });

  it('a node agent gets workload SVIDs for its entries under the same policy (BatchNewX509Svid)', async () => {
    const node = await register(s, 'node-1');
    await s.client.createEntry({
      entry: {
        spiffeId: id('workload/web'),
        parentId: node.spiffeId,
        selectors: [{ type: 'unix', value: 'uid:1000' }],
        allowedScopes: ['docs:read', 'docs:write'],
      },
    });
    const listed = await s.client.listEntries({ filter: { spiffeIdPrefix: id('workload/') } });
    const nodeClient = new NodeServiceClient(
      s.running.publicAddress,
      channelCredentialsPresenting(s.running.ca.bundle(), marshalIdentity(node)),
      LANYARD_CHANNEL_OPTIONS,
    );
    try {
      const { privateKey } = generateSigningKeyPair('ec-p256');
      const res = await unary(nodeClient.batchNewX509Svid.bind(nodeClient), {
        params: [{ entryId: listed.entries[0]!.id, csr: Buffer.from(createCsr(privateKey).der) }],
      });
      const v = verify(res.svids[0]!.certChain.map((b) => new Uint8Array(b)));
      assert.equal(v.id.toString(), id('workload/web'));
      assert.deepEqual(v.context!.scopes, ['docs:read']);
      assert.equal(v.context!.policyVersion, s.running.policy!.version);
    } finally {
      nodeClient.close();
    }
  });

  it('an edit on disk changes the next issuance and the version in the SVID', async () => {
    const before = s.running.policy!.version;
    const reloaded = once(s.running.policy!, 'reload');
    writeAtomically(policyFile, POLICY + ALICE_MAY_WRITE);
    await reloaded;
    const after = s.running.policy!.version;
    assert.notEqual(after, before);
    const alice = await startSession(planner, 'alice', ['docs:read', 'docs:write']);
    assert.deepEqual(alice.scopes, ['docs:read', 'docs:write']);
    assert.equal(alice.svid.context!.policyVersion, after);
    assert.ok(s.logs.some((l) => l.includes('policies reloaded') && l.includes(after)));
  });

  it('a malformed edit keeps the previous set and version for issuance, and is logged naming the file', async () => {
    const current = s.running.policy!.version;
    const failed = once(s.running.policy!, 'reloadFailed');
    writeAtomically(
      policyFile,
      `${POLICY}\npermit (principal, action, resource) when { principal.scopes.contains(1) };`,
    );
    const [err] = (await failed) as [Error];
    assert.ok(err.message.startsWith(policyFile), err.message);
    assert.equal(s.running.policy!.version, current);
    const alice = await startSession(planner, 'alice', ['docs:read', 'docs:write']);
    assert.deepEqual(alice.scopes, ['docs:read', 'docs:write']);
    assert.equal(alice.svid.context!.policyVersion, current);
    assert.ok(s.logs.some((l) => l.includes('policy reload failed') && l.includes(policyFile)));
  });

  it('renewing a session applies the policy in force: a withdrawn scope goes, with the new version', async () => {
    const alice = await startSession(planner, 'alice', ['docs:read', 'docs:write']);
    assert.deepEqual(alice.scopes, ['docs:read', 'docs:write']);
    const before = s.running.policy!.version;
    const reloaded = once(s.running.policy!, 'reload');
    writeAtomically(policyFile, POLICY);
    await reloaded;
    assert.notEqual(s.running.policy!.version, before);
    const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD, alice.agent);
    try {
      const { csr } = newKeyFor(alice.agent.key);
      const renewed = await renewCall(pub, csr);
      const v = verify(renewed.svid!.certChain.map((b) => new Uint8Array(b)));
      assert.equal(v.context!.sessionId, alice.svid.context!.sessionId);
      assert.deepEqual(v.context!.scopes, ['docs:read']);
      assert.equal(v.context!.policyVersion, s.running.policy!.version);
    } finally {
      pub.close();
    }
  });

  it('a malformed policy at start fails the start-up naming the file, and leaves no server behind', async () => {
    const dir = tempDataDir();
    const bad = path.join(dir, 'bad.cedar');
    fs.writeFileSync(bad, 'permit (principal, action, resource) when { principal.nope };\n');
    try {
      await assert.rejects(
        startTestServer({ dir: path.join(dir, 'data'), config: { policyFiles: [bad] } }),
        (e: unknown) =>
          e instanceof LanyardError &&
          e.code === ErrorCode.POLICY_INVALID &&
          e.message.startsWith(`${bad}:1:`),
      );
      // The store was closed on the failed start: a second server opens the same data dir.
      const again = await startTestServer({ dir: path.join(dir, 'data') });
      await again.stop();
    } finally {
      removeDir(dir);
    }
  });

  it('policy.files in the config file resolves relative to it; a missing path is a config error', () => {
    const dir = tempDataDir();
    try {
      fs.mkdirSync(path.join(dir, 'policies'));
      fs.writeFileSync(path.join(dir, 'lanyard.yaml'), 'policy:\n  files: [policies/]\n');
      const config = loadConfig({ configFile: path.join(dir, 'lanyard.yaml'), env: {} });
      assert.deepEqual(config.policyFiles, [path.join(dir, 'policies')]);
      assert.equal(loadConfig({ env: {}, cwd: dir }).policyFiles, undefined);
      fs.writeFileSync(path.join(dir, 'missing.yaml'), 'policy:\n  files: [nowhere.cedar]\n');
      assert.throws(
        () => loadConfig({ configFile: path.join(dir, 'missing.yaml'), env: {} }),
        /policy\.files\[0\]: cannot read .*nowhere\.cedar/,
      );
      fs.writeFileSync(path.join(dir, 'empty.yaml'), 'policy:\n  files: []\n');
      assert.throws(
        () => loadConfig({ configFile: path.join(dir, 'empty.yaml'), env: {} }),
        /policy\.files: needs at least one/,
      );
    } finally {
      removeDir(dir);
    }
  });
});

describe('policy: a server without policy.files issues as before, with policyVersion "none"', function () {
  this.timeout(30_000);
  let s: TestServer;
  before(async () => {
    s = await startTestServer();
  });
  after(async () => {
    await s.stop();
    removeDir(s.dir);
  });

  it('the entry scopes in full, policyVersion none', async () => {
    const agent = await register(s, 'planner', { allowedScopes: ['docs:read', 'docs:write'] });
    const v = verifyX509Svid(
      agent.chain,
      X509Bundle.fromPem(TrustDomain.parse(TD), s.running.ca.bundle().toPem()),
      {
        cache: null,
      },
    );
    assert.deepEqual(v.context!.scopes, ['docs:read', 'docs:write']);
    assert.equal(v.context!.policyVersion, 'none');
    assert.equal(s.running.policy, undefined);
  });
});
