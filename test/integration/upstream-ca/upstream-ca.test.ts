/**
 * ca.upstream end to end: an organisation root and intermediate made here, handed to a real server through a
 * YAML config file; the bundle holds only the org root and workloads get `leaf, Lanyard CA, org intermediate`,
 * which verifies with verifyX509Svid and with `openssl verify`. Every refusal stops the start-up naming the
 * field, before the data dir is created.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { EXIT_REJECTED } from '../../../src/cli/exit-codes';
import { ConfigError } from '../../../src/errors';
import { loadConfig } from '../../../src/server/config';
import { startServer } from '../../../src/server/run';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { attest, connectPublic, getBundle, newKey, type PublicClients } from '../../support/public-client';
import { runCli, spawnServer } from '../../support/server-process';
import { certPem, createOrgPki, ORG_TD, type OrgPki, writeUpstreamConfig } from '../../support/pki';

const TD = ORG_TD;
const td = TrustDomain.parse(TD);

/**
 * A second organisation PKI, `org2`: root -> regional CA -> workload CA (Lanyard's signer), its cert_file the
 * workload CA then the regional CA, with a config file naming its files.
 */
function twoOrgIntermediates(
  work: string,
  pathLen: { regional: number; signer?: number },
): { org: OrgPki; regional: ParsedCertificate; signer: ParsedCertificate; configFile: string } {
  const org = createOrgPki(work, 'org2', {
    levels: [
      { pathLen: pathLen.regional, commonName: 'Regional CA' },
      {
        commonName: 'Workload CA',
        ttlSeconds: 180 * 86400,
        ...(pathLen.signer !== undefined ? { pathLen: pathLen.signer } : {}),
      },
    ],
  });
  const configFile = writeUpstreamConfig(work, {
    cert: 'org2/int.pem',
    key: 'org2/int.key',
    bundle: 'org2/root.pem',
  });
  return { org, signer: org.chain[0]!, regional: org.chain[1]!, configFile };
}

/** Registers `spiffe://<TD>/agents/<name>` (selector unix:uid:1) and attests it with a fresh join token. */
async function attestAgent(
  s: TestServer,
  pub: PublicClients,
  name: string,
): Promise<{ id: string; result: Awaited<ReturnType<typeof attest>> }> {
  const id = `spiffe://${TD}/agents/${name}`;
  await s.client.createEntry({ entry: { spiffeId: id, selectors: [{ type: 'unix', value: 'uid:1' }] } });
  const { token } = await s.client.createJoinToken({ spiffeId: id });
  const result = await attest(pub.attestation, {
    attestorType: 'join_token',
    evidence: Buffer.from(token),
    csr: newKey().csr,
  });
  return { id, result };
}

describe('ca.upstream: Lanyard CAs signed by an organisation intermediate', function () {
  this.timeout(60_000);
  let work: string;
  let org: OrgPki;
  beforeEach(() => {
    work = tempDataDir();
    org = createOrgPki(work, 'org');
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  describe('a running server', () => {
    let s: TestServer | undefined;
    let pub: PublicClients | undefined;
    afterEach(async () => {
      pub?.close();
      await s?.stop();
      s = undefined;
      pub = undefined;
    });

    it('publishes only the org root and issues chains leaf -> Lanyard CA -> org intermediate', async () => {
      const configFile = writeUpstreamConfig(work, {
        cert: 'org/int.pem',
        key: 'org/int.key',
        bundle: 'org/root.pem',
      });
      const fromFile = loadConfig({ configFile, env: {} });
      assert.deepEqual(fromFile.caUpstream, {
        certFile: path.join(org.dir, 'int.pem'),
        keyFile: path.join(org.dir, 'int.key'),
        bundleFile: path.join(org.dir, 'root.pem'),
      });
      s = await startTestServer({ config: { caUpstream: fromFile.caUpstream!, configFile } });
      // A workload bootstraps with the org root alone: the server's own chain must verify to it.
      pub = connectPublic(s.running.publicAddress, certPem(org.root.cert), TD);

      const { bundle } = await getBundle(pub);
      assert.deepEqual(
        bundle!.x509Authorities.map((d) => Buffer.from(d).toString('hex')),
        [Buffer.from(org.root.cert.der).toString('hex')],
      );
      const admin = await s.client.getBundle({});
      assert.equal(admin.bundle!.x509AuthoritiesPem, certPem(org.root.cert));

      const { id, result } = await attestAgent(s, pub, 'upstream');
      const chain = result.svid!.certChain.map((d) => ParsedCertificate.fromDer(d));
      assert.equal(chain.length, 3);
      const [leaf, lanyardCa, orgIntermediate] = chain as [
        ParsedCertificate,
        ParsedCertificate,
        ParsedCertificate,
      ];
      assert.deepEqual(Buffer.from(orgIntermediate.der), Buffer.from(org.signer.cert.der));
      assert.ok(lanyardCa.isCa && !lanyardCa.selfIssued);
      assert.deepEqual(Buffer.from(lanyardCa.issuerDer), Buffer.from(orgIntermediate.subjectDer));
      assert.equal(s.running.ca.authorities()[0]!.selfSigned, false);

      const orgBundle = X509Bundle.fromPem(td, certPem(org.root.cert));
      assert.equal(verifyX509Svid(result.svid!.certChain, orgBundle).id.toString(), id);
      // Negative: the same chain against another organisation's root does not verify.
      const other = createOrgPki(work, 'other');
      assert.throws(() =>
        verifyX509Svid(result.svid!.certChain, X509Bundle.fromPem(td, certPem(other.root.cert))),
      );

      // OpenSSL agrees, and needs the org intermediate the chain carries.
      const files = path.join(work, 'openssl');
      fs.mkdirSync(files);
      const write = (name: string, text: string): string => {
        fs.writeFileSync(path.join(files, name), text);
        return path.join(files, name);
      };
      const rootFile = write('root.pem', certPem(org.root.cert));
      const leafFile = write('leaf.pem', certPem(leaf));
      const untrusted = write('chain.pem', certPem(lanyardCa) + certPem(orgIntermediate));
      const verified = execFileSync(
        'openssl',
        ['verify', '-CAfile', rootFile, '-untrusted', untrusted, leafFile],
        {
          encoding: 'utf8',
        },
      );
      assert.match(verified, /leaf\.pem: OK/);
      const withoutIntermediate = write('ca-only.pem', certPem(lanyardCa));
      assert.throws(() =>
        execFileSync(
          'openssl',
          ['verify', '-CAfile', rootFile, '-untrusted', withoutIntermediate, leafFile],
          {
            stdio: 'pipe',
          },
        ),
      );
    });

    it('with two org intermediates in cert_file, workloads get both, below the Lanyard CA', async () => {
      // root -> regional CA -> workload CA (Lanyard's signer); cert_file = workload CA, then regional CA.
      const deep = twoOrgIntermediates(work, { regional: 2, signer: 1 });
      const { regional, signer, configFile } = deep;
      s = await startTestServer({
        config: { caUpstream: loadConfig({ configFile, env: {} }).caUpstream!, configFile },
      });
      pub = connectPublic(s.running.publicAddress, certPem(deep.org.root.cert), TD);
      const { id, result } = await attestAgent(s, pub, 'deep');
      const chain = result.svid!.certChain.map((d) => Buffer.from(d).toString('hex'));
      assert.equal(chain.length, 4);
      assert.deepEqual(
        chain.slice(2),
        [signer.der, regional.der].map((d) => Buffer.from(d).toString('hex')),
      );
      const orgBundle = X509Bundle.fromPem(td, certPem(deep.org.root.cert));
      assert.equal(verifyX509Svid(result.svid!.certChain, orgBundle).id.toString(), id);
      // Without the regional CA the chain does not reach the root.
      assert.throws(() => verifyX509Svid(result.svid!.certChain.slice(0, 3), orgBundle));
    });

    it('`lanyard server run --config` with ca.upstream: `lanyard bundle show` prints the org root alone', async () => {
      const configFile = writeUpstreamConfig(work, {
        cert: 'org/int.pem',
        key: 'org/int.key',
        bundle: 'org/root.pem',
      });
      const dataDir = path.join(work, 'data');
      const server = spawnServer(['--config', configFile, '--data-dir', dataDir]);
      try {
        await server.ready;
        const shown = await runCli(['bundle', 'show', '--data-dir', dataDir]);
        assert.equal(shown.code, 0, shown.stderr);
        assert.equal(shown.stdout.trim(), certPem(org.root.cert).trim());
        server.child.kill('SIGTERM');
        assert.equal(await server.exited, 0);
      } finally {
        server.kill();
      }
    });
  });

  describe('refused at start-up, naming the field, with nothing written', () => {
    /** startServer on a data dir that does not exist yet: it must still not exist after the refusal. */
    async function refused(configFile: string, ...fragments: string[]): Promise<void> {
      const dataDir = path.join(work, 'data');
      const config = { ...loadConfig({ configFile, dataDir, env: {} }) };
      await assert.rejects(startServer(config), (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.ok(e.message.startsWith(`${configFile}: `), e.message);
        for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" lacks "${f}"`);
        assert.ok(!e.message.includes('PRIVATE KEY'), 'no key material in the message');
        return true;
      });
      assert.equal(fs.existsSync(dataDir), false, 'data dir not created');
    }

    it('a key file readable by group or others', async () => {
      fs.chmodSync(path.join(org.dir, 'int.key'), 0o644);
      const file = writeUpstreamConfig(work, {
        cert: 'org/int.pem',
        key: 'org/int.key',
        bundle: 'org/root.pem',
      });
      await refused(file, 'ca.upstream.key_file: ', 'accessible by group or others', 'chmod 600');
      fs.chmodSync(path.join(org.dir, 'int.key'), 0o640);
      await refused(file, 'ca.upstream.key_file: ', 'mode 640');
    });

    it('an intermediate that does not chain to the bundle', async () => {
      const other = createOrgPki(work, 'other');
      const file = writeUpstreamConfig(work, {
        cert: 'org/int.pem',
        key: 'org/int.key',
        bundle: 'other/root.pem',
      });
      await refused(
        file,
        'ca.upstream.cert_file: ',
        'does not chain to a root in',
        path.join(other.dir, 'root.pem'),
      );
    });

    it("a key that is not the intermediate certificate's", async () => {
      createOrgPki(work, 'other');
      const file = writeUpstreamConfig(work, {
        cert: 'org/int.pem',
        key: 'other/int.key',
        bundle: 'org/root.pem',
      });
      await refused(file, 'ca.upstream.key_file: ', 'is not the key of the first certificate');
    });

    it('a bundle file that holds an intermediate, not a root', async () => {
      const file = writeUpstreamConfig(work, {
        cert: 'org/int.pem',
        key: 'org/int.key',
        bundle: 'org/int.pem',
      });
      await refused(file, 'ca.upstream.bundle_file: ', 'self-issued CA');
    });

    it('a CA above the signer whose pathLenConstraint leaves no room for Lanyard’s CA', async () => {
      // root -> regional (pathLen 1) -> signer (no pathLen): valid as a chain, but with Lanyard's CA below the
      // signer the regional CA would have two intermediates under it.
      const { regional, configFile: file } = twoOrgIntermediates(work, { regional: 1 });
      await refused(
        file,
        'ca.upstream.cert_file: ',
        "cannot sign Lanyard's CA",
        'ERR_PATH_LEN_EXCEEDED',
        `serial ${regional.serialHex}`,
      );
    });

    it('by the CLI: exit 1, the field on stderr, no data dir', async () => {
      fs.chmodSync(path.join(org.dir, 'int.key'), 0o644);
      const file = writeUpstreamConfig(work, {
        cert: 'org/int.pem',
        key: 'org/int.key',
        bundle: 'org/root.pem',
      });
      const dataDir = path.join(work, 'data');
      const r = await runCli(['server', 'run', '--config', file, '--data-dir', dataDir], {
        LANYARD_LISTEN_ADDRESS: '127.0.0.1:0',
      });
      assert.equal(r.code, EXIT_REJECTED, r.stderr);
      assert.match(r.stderr, /ca\.upstream\.key_file: .*accessible by group or others/);
      assert.equal(fs.existsSync(dataDir), false);
    });
  });

  describe('the config schema', () => {
    const write = (text: string): string => {
      const file = path.join(work, 'c.yaml');
      fs.writeFileSync(file, text);
      return file;
    };
    const failsWith = (text: string, ...fragments: string[]): void => {
      const file = write(text);
      assert.throws(
        () => loadConfig({ configFile: file, env: {} }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError, String(e));
          for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" lacks "${f}"`);
          return true;
        },
      );
    };

    it('is absent by default (self-signed roots)', () => {
      assert.equal(loadConfig({ configFile: write('ca:\n  ttl: 2h\n'), env: {} }).caUpstream, undefined);
    });

    it('needs all three files, readable, and no other field', () => {
      failsWith(
        'ca:\n  upstream:\n    cert_file: org/int.pem\n    bundle_file: org/root.pem\n',
        'ca.upstream.key_file: required',
      );
      failsWith(
        'ca:\n  upstream:\n    cert_file: org/int.pem\n    key_file: org/int.key\n    bundle_file: org/root.pem\n    chain_file: x\n',
        'ca.upstream.chain_file: unknown field',
      );
      failsWith(
        'ca:\n  upstream:\n    cert_file: org/int.pem\n    key_file: org/int.key\n    bundle_file: org/nope.pem\n',
        'ca.upstream.bundle_file: cannot read',
        path.join(org.dir, 'nope.pem'),
      );
      failsWith('ca:\n  upstream:\n', 'ca.upstream.cert_file: required');
    });
  });
});
