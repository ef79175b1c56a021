/**
 * Lanyard SVIDs in a real SPIFFE estate: peers that know nothing of Lanyard read and verify SVIDs issued by a
 * real server (127.0.0.1:0, SQLite in a temp dir) — a workload SVID from Attest, a task session SVID, delegated
 * SVIDs with one and two links, and one fetched through `lanyard agent run`'s Workload API — against the
 * bundle `lanyard bundle show` prints:
 *   - Go, standard library only (crypto/x509, what go-spiffe and SPIRE parse with): x509.Certificate.Verify for
 *     client and server auth, exactly one URI SAN with the expected SPIFFE ID, the extension under the OID;
 *   - Python cryptography 38 (Debian's, /usr/bin/python3): loads each, reads the extension bytes, checks the
 *     signatures up to the bundle root;
 *   - Java (CertificateFactory, PKIX CertPathValidator): parses, reads the extension, validates the path;
 *   - OpenSSL: verify -x509_strict for sslclient and sslserver.
 * The extension bytes every peer reads are the DER of the context the server signed. Negative checks make
 * each peer's verdict meaningful: another trust domain's bundle is refused, and certificates carrying an OID
 * arc of 2^31 (Go) or 2^28 (cryptography 38) are refused outright, which is why the writer no longer makes them.
 * Then the same with a custom agent_context.oid configured on the server (from a config file).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { X509Bundle } from '../../../src/bundle';
import { ErrorCode } from '../../../src/errors';
import { loadConfig } from '../../../src/server/config';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { encodeAgentContext } from '../../../src/x509/agent-context/codec';
import { DEFAULT_AGENT_CONTEXT_OID, RETIRED_AGENT_CONTEXT_OIDS } from '../../../src/x509/agent-context/oid';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { decodePemBlocks, encodePem } from '../../../src/x509/pem';
import { OID_ARC_LIMIT } from '../../../src/x509/oid';
import { baseContext, certsPem, createPki, issueSvid } from '../../support/pki';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { runCli, spawnLanyard } from '../../support/server-process';
import { createGrant, id, redeemGrant, register, startSession, TD, type Agent } from '../../support/sessions';
import { openssl } from '../../support/x509';
import { installPeers, PeerPrograms, type PeerCase } from './helpers/peers';
import { issueSvidWithRawContextOid } from '../../support/raw-oid';
import { expectRefusal } from '../../support/refusal';

const CUSTOM_OID = '1.3.6.1.4.1.99999.1.1';

/** An SVID as the peers get it: files, the expected ID, and the extension value the server encoded. */
interface IssuedCase extends PeerCase {
  chain: Uint8Array[];
  /** Hex of encodeAgentContext(the context Lanyard's verifier read): what the server encoded and signed. */
  contextHex: string;
  links: number;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Registers the planner -> tool-runner -> retrieval scenario and collects workload, session and delegated SVIDs. */
async function issueScenario(s: TestServer, agentContextOid?: string): Promise<Record<string, Agent>> {
  const oid = agentContextOid !== undefined ? { agentContextOid } : {};
  const planner = await register(s, 'planner', {
    allowedScopes: ['docs:read', 'docs:write', 'tools:run'],
    maxDelegationDepth: 2,
    allowedDelegates: [id('tool-runner')],
  });
  const tool = await register(s, 'tool-runner', {
    allowedScopes: ['docs:read', 'tools:run'],
    maxDelegationDepth: 2,
    allowedDelegates: [id('retrieval')],
  });
  const retrieval = await register(s, 'retrieval', { allowedScopes: ['docs:read'] });
  const session = (
    await startSession(s, planner, { scopes: ['docs:read', 'docs:write', 'tools:run'], intent: 'triage' })
  ).agent;
  const g1 = await createGrant(s, session, {
    childId: id('tool-runner'),
    scopes: ['docs:read', 'tools:run'],
    ...oid,
  });
  const toolDelegated = await redeemGrant(s, tool, g1);
  const g2 = await createGrant(s, toolDelegated, { childId: id('retrieval'), scopes: ['docs:read'], ...oid });
  const retrievalDelegated = await redeemGrant(s, retrieval, g2);
  return {
    workload: planner,
    session,
    'delegated-1-link': toolDelegated,
    'delegated-2-links': retrievalDelegated,
  };
}

/** `lanyard bundle show` on the server host (admin socket), into a file: what a relying party is handed. */
async function bundleShow(s: TestServer, file: string): Promise<string> {
  const r = await runCli(['bundle', 'show', '--data-dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /-----BEGIN CERTIFICATE-----/);
  fs.writeFileSync(file, r.stdout);
  return file;
}

function toCase(
  dir: string,
  name: string,
  chain: Uint8Array[],
  bundleFile: string,
  agentContextOid: string,
): IssuedCase {
  const chainFile = path.join(dir, `${name}.pem`);
  fs.writeFileSync(chainFile, chain.map((d) => encodePem('CERTIFICATE', d)).join(''));
  // Lanyard's own verifier, with the bundle file alone: the context it reads is the one the server signed.
  const bundle = X509Bundle.fromPem(TrustDomain.parse(TD), fs.readFileSync(bundleFile, 'utf8'));
  const v = verifyX509Svid(chain, bundle, { agentContextOid, cache: null });
  assert.ok(v.context !== undefined, `${name} carries an agent context`);
  return {
    name,
    chainFile,
    bundleFile,
    expectedId: v.id.toString(),
    chain,
    contextHex: hex(encodeAgentContext(v.context)),
    links: v.context.delegation.length,
  };
}

function opensslVerify(
  dir: string,
  c: IssuedCase,
  purpose: 'sslclient' | 'sslserver',
): { ok: boolean; output: string } {
  const leaf = path.join(dir, `${c.name}-leaf.pem`);
  fs.writeFileSync(leaf, encodePem('CERTIFICATE', c.chain[0]!));
  const rest = c.chain.slice(1);
  const untrusted = path.join(dir, `${c.name}-untrusted.pem`);
  if (rest.length > 0) fs.writeFileSync(untrusted, rest.map((d) => encodePem('CERTIFICATE', d)).join(''));
  return openssl([
    'verify',
    '-x509_strict',
    '-purpose',
    purpose,
    '-CAfile',
    c.bundleFile,
    ...(rest.length > 0 ? ['-untrusted', untrusted] : []),
    leaf,
  ]);
}

/** Every peer's verdict on server-issued SVIDs whose context is under `oid`. */
function describePeers(
  get: () => { peers: PeerPrograms; cases: IssuedCase[]; foreignBundle: string; dir: string },
  oid: string,
): void {
  it(`Go (standard library) verifies each for client and server auth against the bundle, one URI SAN, the extension under ${oid}`, async () => {
    const { peers, cases } = get();
    const results = await peers.go(oid, cases);
    results.forEach((r, i) => {
      const c = cases[i]!;
      assert.equal(r.parseError, undefined, `${c.name}: ${r.parseError}`);
      assert.equal(r.clientAuth, '', `${c.name} client auth: ${r.clientAuth}`);
      assert.equal(r.serverAuth, '', `${c.name} server auth: ${r.serverAuth}`);
      assert.ok(r.chainsToRoot >= 1);
      assert.deepEqual(r.uris, [c.expectedId]);
      assert.equal(r.svidProblem, '', c.name);
      assert.deepEqual(r.extension, { critical: false, valueHex: c.contextHex }, c.name);
    });
    // Done when: a Go program on the standard library alone verifies an SVID with a 2-link delegation chain.
    const twoLinks = cases.find((c) => c.links === 2);
    assert.ok(twoLinks !== undefined && results.find((r) => r.name === twoLinks.name)?.clientAuth === '');
  });

  it("Go refuses each against another trust domain's bundle", async () => {
    const { peers, cases, foreignBundle } = get();
    const results = await peers.go(
      oid,
      cases.map((c) => ({ ...c, bundleFile: foreignBundle })),
    );
    for (const r of results) {
      assert.equal(r.parseError, undefined);
      assert.match(r.clientAuth, /certificate signed by unknown authority/, r.name);
      assert.match(r.serverAuth, /certificate signed by unknown authority/, r.name);
    }
  });

  it(`Python cryptography 38 loads each, reads the extension bytes under ${oid} and checks the signatures`, async () => {
    const { peers, cases, foreignBundle } = get();
    const results = await peers.python(oid, [
      ...cases,
      { ...cases[0]!, name: 'foreign', bundleFile: foreignBundle },
    ]);
    for (const r of results) assert.match(r.cryptography, /^38\./, 'Debian bookworm ships cryptography 38');
    results.slice(0, cases.length).forEach((r, i) => {
      const c = cases[i]!;
      assert.equal(r.parseError, undefined, `${c.name}: ${r.parseError}`);
      assert.deepEqual(r.uris, [c.expectedId]);
      assert.deepEqual(r.extension, { critical: false, valueHex: c.contextHex }, c.name);
      assert.equal(r.pathProblem, '', c.name);
    });
    assert.match(
      results.at(-1)!.pathProblem ?? '',
      /no issuer of .* in the bundle/,
      'not signed by a root of the other bundle',
    );
  });

  it(`Java parses each (CertificateFactory), reads the extension under ${oid} and validates the path (PKIX)`, async () => {
    const { peers, cases, foreignBundle } = get();
    const results = await peers.java(oid, [
      ...cases,
      { ...cases[0]!, name: 'foreign', bundleFile: foreignBundle },
    ]);
    results.slice(0, cases.length).forEach((r, i) => {
      const c = cases[i]!;
      assert.equal(r.parseError, undefined, `${c.name}: ${r.parseError}`);
      assert.deepEqual(r.uris, [c.expectedId]);
      assert.deepEqual(r.extension, { critical: false, valueHex: c.contextHex }, c.name);
      assert.equal(r.pkixProblem, '', c.name);
    });
    assert.match(results.at(-1)!.pkixProblem ?? '', /CertPathValidatorException/);
  });

  it('OpenSSL verify -x509_strict accepts each for sslclient and sslserver', () => {
    const { cases, dir } = get();
    for (const c of cases) {
      for (const purpose of ['sslclient', 'sslserver'] as const) {
        const r = opensslVerify(dir, c, purpose);
        assert.ok(r.ok, `${c.name} ${purpose}: ${r.output}`);
      }
    }
    const foreign = opensslVerify(dir, { ...cases[0]!, bundleFile: get().foreignBundle }, 'sslclient');
    assert.ok(!foreign.ok, foreign.output);
  });
}

describe('interop: Go, Python cryptography 38, Java and OpenSSL verify server-issued SVIDs', function () {
  this.timeout(120_000);
  let peers: PeerPrograms;
  const files = tempDataDir();
  let foreignBundle: string;

  before(async function () {
    // apt-get on a fresh machine (golang-go, python3-cryptography, a headless JDK); seconds when present.
    this.timeout(20 * 60_000);
    await installPeers();
    peers = await PeerPrograms.build();
    foreignBundle = path.join(files, 'foreign-bundle.pem');
    fs.writeFileSync(foreignBundle, certsPem([createPki('other.example').root.cert]));
  });
  after(() => {
    peers?.close();
    fs.rmSync(files, { recursive: true, force: true });
  });

  describe(`the default OID ${DEFAULT_AGENT_CONTEXT_OID}`, () => {
    let s: TestServer;
    const dir = path.join(files, 'default');
    const cases: IssuedCase[] = [];

    before(async function () {
      this.timeout(180_000);
      fs.mkdirSync(dir);
      s = await startTestServer();
      const bundleFile = await bundleShow(s, path.join(dir, 'bundle.pem'));
      for (const [name, agent] of Object.entries(await issueScenario(s))) {
        cases.push(toCase(dir, name, agent.chain, bundleFile, DEFAULT_AGENT_CONTEXT_OID));
      }
      cases.push(
        toCase(
          dir,
          'agent-workload-api',
          await fetchThroughAgent(s, dir),
          bundleFile,
          DEFAULT_AGENT_CONTEXT_OID,
        ),
      );
      assert.deepEqual(
        cases.map((c) => c.links),
        [0, 0, 1, 2, 0],
      );
    });
    after(async () => {
      await s?.stop();
    });

    describePeers(() => ({ peers, cases, foreignBundle, dir }), DEFAULT_AGENT_CONTEXT_OID);
  });

  describe('OIDs the writer refuses: peers refuse whole certificates that carry them', () => {
    const pki = createPki('example.org');
    const context = encodeAgentContext(baseContext({ agentId: 'a', sessionId: 's', scopes: ['docs:read'] }));
    const key = generateSigningKeyPair('ec-p256');
    const OIDS = {
      // The largest arc the writer accepts: every peer parses it.
      'arc-2^28-1': `1.3.6.1.4.1.${OID_ARC_LIMIT - 1}.1`,
      'arc-2^28': `1.3.6.1.4.1.${OID_ARC_LIMIT}.1`,
      'arc-2^31-1': `1.3.6.1.4.1.${2 ** 31 - 1}.1`,
      'arc-2^31': `1.3.6.1.4.1.${2 ** 31}.1`,
      'retired-2.25-uuid': RETIRED_AGENT_CONTEXT_OIDS[0]!,
    } as const;
    const cases: PeerCase[] = [];
    const dir = path.join(files, 'arcs');

    before(() => {
      fs.mkdirSync(dir);
      const bundleFile = path.join(dir, 'bundle.pem');
      fs.writeFileSync(bundleFile, certsPem([pki.root.cert]));
      for (const [name, oid] of Object.entries(OIDS)) {
        const cert = issueSvidWithRawContextOid({
          spiffeId: `spiffe://example.org/agent/${name}`,
          publicKey: key.publicKey,
          issuer: pki.intermediate,
          contextOid: oid,
          contextDer: context,
        });
        const chainFile = path.join(dir, `${name}.pem`);
        fs.writeFileSync(chainFile, certsPem([cert, pki.intermediate.cert]));
        cases.push({ name, chainFile, bundleFile, expectedId: `spiffe://example.org/agent/${name}` });
      }
      // The production writer refuses all but the first; the test-only builder above is how they exist at all.
      assert.doesNotThrow(() =>
        issueSvid(pki, 'spiffe://example.org/a', {
          context: baseContext({ sessionId: 's', scopes: [] }),
          agentContextOid: OIDS['arc-2^28-1'],
        }),
      );
      for (const oid of [OIDS['arc-2^28'], OIDS['arc-2^31']]) {
        expectRefusal(
          () =>
            issueSvid(pki, 'spiffe://example.org/a', {
              context: baseContext({ sessionId: 's', scopes: [] }),
              agentContextOid: oid,
            }),
          ErrorCode.INVALID_AGENT_CONTEXT_OID,
        );
      }
    });

    const byName = <T extends { name: string }>(results: T[]): Record<keyof typeof OIDS, T> =>
      Object.fromEntries(results.map((r) => [r.name, r])) as Record<keyof typeof OIDS, T>;

    it("Go's crypto/x509 refuses an arc of 2^31 or more (so go-spiffe and SPIRE would), and reads 2^31 - 1", async () => {
      const r = byName(await peers.go(OIDS['arc-2^28-1'], cases));
      assert.equal(r['arc-2^28-1'].clientAuth, '', r['arc-2^28-1'].clientAuth);
      assert.ok(r['arc-2^28-1'].extension !== null);
      for (const ok of [r['arc-2^28'], r['arc-2^31-1']]) {
        assert.equal(ok.parseError, undefined, ok.name);
        assert.equal(ok.clientAuth, '', ok.name);
      }
      for (const refused of [r['arc-2^31'], r['retired-2.25-uuid']]) {
        assert.match(refused.parseError ?? '', /malformed extension OID field/, refused.name);
      }
    });

    it('Python cryptography 38 refuses an arc of 2^28 or more, and reads 2^28 - 1', async () => {
      const r = byName(await peers.python(OIDS['arc-2^28-1'], cases));
      assert.equal(r['arc-2^28-1'].parseError, undefined, r['arc-2^28-1'].parseError);
      assert.ok(r['arc-2^28-1'].extension);
      for (const name of ['arc-2^28', 'arc-2^31-1', 'arc-2^31', 'retired-2.25-uuid'] as const) {
        assert.match(r[name].parseError ?? '', /Extension::extn_id/, `${name} must not load`);
      }
    });

    it('Java and OpenSSL read all of them (they are not the limit)', async () => {
      for (const r of await peers.java(OIDS['arc-2^28-1'], cases))
        assert.equal(r.parseError, undefined, r.name);
      for (const c of cases) {
        const r = openssl(['x509', '-in', c.chainFile, '-noout', '-ext', 'subjectAltName']);
        assert.ok(r.ok, `${c.name}: ${r.output}`);
      }
    });
  });

  describe(`a custom agent_context.oid (${CUSTOM_OID}) set in the server's config file`, () => {
    let s: TestServer;
    const dir = path.join(files, 'custom');
    const cases: IssuedCase[] = [];

    before(async function () {
      this.timeout(120_000);
      fs.mkdirSync(dir);
      const configFile = path.join(dir, 'server.yaml');
      fs.writeFileSync(configFile, `agent_context:\n  oid: ${CUSTOM_OID}\n`);
      const data = tempDataDir();
      const config = loadConfig({ configFile, dataDir: data, env: {} });
      assert.equal(config.agentContextOid, CUSTOM_OID);
      s = await startTestServer({
        dir: data,
        config: { ...config, listenAddress: { host: '127.0.0.1', port: 0 } },
      });
      const bundleFile = await bundleShow(s, path.join(dir, 'bundle.pem'));
      for (const [name, agent] of Object.entries(await issueScenario(s, CUSTOM_OID))) {
        cases.push(toCase(dir, name, agent.chain, bundleFile, CUSTOM_OID));
      }
    });
    after(async () => {
      await s?.stop();
      if (s !== undefined) fs.rmSync(s.dir, { recursive: true, force: true });
    });

    describePeers(() => ({ peers, cases, foreignBundle, dir }), CUSTOM_OID);

    it('peers find nothing under the default OID (an unknown extension to them), and still verify', async () => {
      for (const r of await peers.go(DEFAULT_AGENT_CONTEXT_OID, cases)) {
        assert.equal(r.extension, null);
        assert.equal(r.clientAuth, '');
      }
      for (const r of await peers.python(DEFAULT_AGENT_CONTEXT_OID, cases)) assert.equal(r.extension, null);
    });

    it("Lanyard's verifier reads them with the matching option and refuses them on another OID, naming both", () => {
      for (const c of cases) {
        const bundle = X509Bundle.fromPem(TrustDomain.parse(TD), fs.readFileSync(c.bundleFile, 'utf8'));
        assert.ok(verifyX509Svid(c.chain, bundle, { agentContextOid: CUSTOM_OID, cache: null }).context);
        const e = expectRefusal(
          () => verifyX509Svid(c.chain, bundle, { cache: null }),
          ErrorCode.AGENT_CONTEXT_OID_MISMATCH,
        );
        assert.ok(e.message.includes(CUSTOM_OID) && e.message.includes(DEFAULT_AGENT_CONTEXT_OID), e.message);
      }
    });
  });
});

/**
 * Runs `lanyard agent run` against `s` (a join-token file, a workload entry for this uid under the agent) and
 * fetches the workload's SVID with `lanyard agent fetch x509 --write`: the chain as the Workload API served it.
 */
async function fetchThroughAgent(s: TestServer, dir: string): Promise<Uint8Array[]> {
  const agentId = id('agent/node-peers');
  await s.client.createEntry({
    entry: { spiffeId: agentId, selectors: [{ type: 'node', value: 'name:peers' }] },
  });
  await s.client.createEntry({
    entry: {
      spiffeId: id('workload/peer-reader'),
      parentId: agentId,
      selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
    },
  });
  const { token } = await s.client.createJoinToken({ spiffeId: agentId });
  fs.writeFileSync(path.join(dir, 'token'), token, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'agent-bundle.pem'), s.running.ca.bundle().toPem());
  const socket = path.join(dir, 'agent.sock');
  const agent = spawnLanyard([
    'agent',
    'run',
    '--server',
    s.running.publicAddress,
    '--bundle',
    path.join(dir, 'agent-bundle.pem'),
    '--socket',
    socket,
    '--join-token-file',
    path.join(dir, 'token'),
    '--sync-interval',
    '1s',
  ]);
  try {
    await agent.printed('Lanyard agent running');
    const out = path.join(dir, 'fetched');
    const r = await runCli(['agent', 'fetch', 'x509', '--socket', socket, '--write', out]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\nagent:\n${agent.output()}`);
    return decodePemBlocks(fs.readFileSync(path.join(out, 'svid.pem'), 'utf8'), 'CERTIFICATE');
  } finally {
    await agent.stop();
  }
}
