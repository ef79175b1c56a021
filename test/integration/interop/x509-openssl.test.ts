import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../../src/x509/agent-context/oid';
import { createCsr, parseCsr } from '../../../src/x509/csr';
import { KeyAlgorithm } from '../../../src/x509/keys';
import { encodePem } from '../../../src/x509/pem';
import {
  createIntermediateCa,
  createRootCa,
  issueX509Svid,
  NameConstraintsSpec,
} from '../../../src/x509/profiles';
import { openssl, testKey, writeTemp } from '../../support/x509';
import { removeDir, tempDir } from '../../support/tmp';
import { expectRefusalAs } from '../../support/refusal';
import { ErrorCode, MalformedInputError } from '../../../src/errors';

const TD = 'example.org';
const DAY = 24 * 60 * 60;
/** A DER SEQUENCE standing in for an encoded agent context; OpenSSL must accept it without knowing it. */
const CONTEXT_DER = new Uint8Array([0x30, 0x06, 0x02, 0x01, 0x01, 0x0c, 0x01, 0x61]);

interface ChainFiles {
  root: string;
  intermediate: string;
  leaf: string;
}

function writeChain(
  dir: string,
  algs: [KeyAlgorithm, KeyAlgorithm, KeyAlgorithm],
  rootConstraints?: NameConstraintsSpec,
): ChainFiles {
  const [rootAlg, intAlg, leafAlg] = algs;
  const rootKey = testKey(rootAlg).privateKey;
  const root = createRootCa({
    trustDomain: TD,
    key: rootKey,
    ttlSeconds: DAY,
    ...(rootConstraints ? { nameConstraints: rootConstraints } : {}),
  });
  const intKey = testKey(intAlg, 1);
  const intermediate = createIntermediateCa({
    trustDomain: TD,
    publicKey: intKey.publicKey,
    issuer: { cert: root.cert, key: rootKey },
    ttlSeconds: DAY,
    pathLen: 0,
  });
  const leaf = issueX509Svid({
    spiffeId: 'spiffe://example.org/agent/planner',
    publicKey: testKey(leafAlg, 2).publicKey,
    issuer: { cert: intermediate.cert, key: intKey.privateKey },
    ttlSeconds: 3600,
    dnsNames: ['planner.example.org'],
    agentContextDer: CONTEXT_DER,
  });
  return {
    root: writeTemp(dir, 'root.pem', encodePem('CERTIFICATE', root.der)),
    intermediate: writeTemp(dir, 'intermediate.pem', encodePem('CERTIFICATE', intermediate.der)),
    leaf: writeTemp(dir, 'leaf.pem', encodePem('CERTIFICATE', leaf.der)),
  };
}

function opensslVerify(files: ChainFiles, purpose: 'sslclient' | 'sslserver', root = files.root) {
  return openssl([
    'verify',
    '-x509_strict',
    '-purpose',
    purpose,
    '-CAfile',
    root,
    '-untrusted',
    files.intermediate,
    files.leaf,
  ]);
}

/** DSA domain parameters for `openssl req -newkey dsa:FILE` (2048-bit p, 256-bit q). */
function dsaParams(dir: string): string {
  const file = join(dir, 'dsa-params.pem');
  const made = openssl([
    'genpkey',
    '-genparam',
    '-algorithm',
    'DSA',
    '-pkeyopt',
    'dsa_paramgen_bits:2048',
    '-out',
    file,
  ]);
  assert.ok(made.ok, made.output);
  return file;
}

describe('interop with OpenSSL', () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('interop');
  });
  afterEach(() => removeDir(dir));

  describe('openssl verify -x509_strict accepts root -> intermediate -> SVID (with the private extension)', () => {
    const combos: [KeyAlgorithm, KeyAlgorithm, KeyAlgorithm][] = [
      ['ec-p256', 'ec-p256', 'ec-p256'],
      ['ec-p384', 'ec-p384', 'ec-p384'],
      ['rsa-2048', 'rsa-2048', 'rsa-2048'],
      ['ed25519', 'ed25519', 'ed25519'],
      ['rsa-2048', 'ec-p384', 'ed25519'],
      ['ed25519', 'rsa-2048', 'ec-p256'],
    ];
    for (const algs of combos) {
      it(`${algs.join(' -> ')}`, () => {
        const files = writeChain(dir, algs);
        for (const purpose of ['sslclient', 'sslserver'] as const) {
          const r = opensslVerify(files, purpose);
          assert.ok(r.ok, `${purpose}: ${r.output}`);
          assert.match(r.output, /leaf\.pem: OK/);
        }
      });
    }

    it('shows OpenSSL the agent-context OID and the SANs as written', () => {
      const files = writeChain(dir, ['ec-p256', 'ec-p256', 'ec-p256']);
      const r = openssl(['x509', '-in', files.leaf, '-noout', '-text']);
      assert.ok(r.ok, r.output);
      assert.ok(r.output.includes(`${DEFAULT_AGENT_CONTEXT_OID}:`), 'OID in dotted decimal, not critical');
      assert.ok(!r.output.includes(`${DEFAULT_AGENT_CONTEXT_OID}: critical`));
      assert.match(r.output, /URI:spiffe:\/\/example\.org\/agent\/planner, DNS:planner\.example\.org/);
    });

    it('honours a URI name constraint on the root (and rejects a chain outside it)', () => {
      const inside = writeChain(dir, ['ec-p256', 'ec-p256', 'ec-p256'], {
        permitted: [{ kind: 'uri', value: TD }],
      });
      assert.ok(opensslVerify(inside, 'sslclient').ok);
      const outside = writeChain(dir, ['ec-p256', 'ec-p256', 'ec-p256'], {
        permitted: [{ kind: 'uri', value: 'other.org' }],
      });
      const r = opensslVerify(outside, 'sslclient');
      assert.ok(!r.ok, 'a chain that breaks the constraint must fail');
      assert.match(r.output, /permitted subtree violation/);
    });

    it('fails against an unrelated root (the check is not vacuous)', () => {
      const files = writeChain(dir, ['ec-p256', 'ec-p256', 'ec-p256']);
      const other = createRootCa({ trustDomain: TD, key: testKey('ec-p256', 5).privateKey, ttlSeconds: DAY });
      const otherRoot = writeTemp(dir, 'other-root.pem', encodePem('CERTIFICATE', other.der));
      assert.ok(!opensslVerify(files, 'sslclient', otherRoot).ok);
    });
  });

  describe('CSRs', () => {
    const opensslKeys: [string, string[], string[]][] = [
      ['EC P-256', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], []],
      ['EC P-384 (OpenSSL default SHA-256)', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'], []],
      ['EC P-384 with SHA-384', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'], ['-sha384']],
      ['RSA 2048', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], []],
      ['Ed25519', ['-algorithm', 'ED25519'], []],
    ];
    for (const [label, genArgs, reqArgs] of opensslKeys) {
      it(`parses and verifies an openssl req -new CSR (${label}), ignoring its subject and SANs`, () => {
        const keyPath = join(dir, 'key.pem');
        const csrPath = join(dir, 'req.pem');
        const gen = openssl(['genpkey', ...genArgs, '-out', keyPath]);
        assert.ok(gen.ok, gen.output);
        const req = openssl([
          'req',
          '-new',
          '-key',
          keyPath,
          '-subj',
          '/O=Evil/CN=admin',
          '-addext',
          'subjectAltName=URI:spiffe://example.org/admin,DNS:admin.example.org',
          ...reqArgs,
          '-out',
          csrPath,
        ]);
        assert.ok(req.ok, req.output);
        const pub = openssl(['pkey', '-in', keyPath, '-pubout']);
        assert.ok(pub.ok, pub.output);

        const parsed = parseCsr(readFileSync(csrPath, 'utf8'));
        assert.equal(parsed.publicKey.export({ type: 'spki', format: 'pem' }), pub.output);

        const root = createRootCa({ trustDomain: TD, key: testKey('ec-p256').privateKey, ttlSeconds: DAY });
        const { cert } = issueX509Svid({
          spiffeId: 'spiffe://example.org/agent/worker',
          publicKey: parsed.publicKey,
          issuer: { cert: root.cert, key: testKey('ec-p256').privateKey },
          ttlSeconds: 600,
        });
        assert.deepEqual([...cert.uriSans], ['spiffe://example.org/agent/worker']);
        assert.equal(cert.sanCount, 1, "the CSR's SANs never reach the certificate");
        assert.equal(cert.node.subject, 'O=SPIFFE');
      });
    }

    for (const alg of ['ec-p256', 'ec-p384', 'rsa-2048', 'ed25519'] as const) {
      it(`a createCsr request (${alg}) passes openssl req -verify`, () => {
        const { pem } = createCsr(testKey(alg, 3).privateKey);
        const path = writeTemp(dir, 'ours.csr', pem);
        const r = openssl(['req', '-in', path, '-verify', '-noout']);
        // OpenSSL 3.0 exits 0 even when the self-signature fails, so the verdict is read from its output.
        assert.ok(r.ok, r.output);
        assert.match(r.output, /self-signature verify OK/);
      });
    }

    it('openssl req -verify rejects a tampered createCsr request (the check is not vacuous)', () => {
      const { der } = createCsr(testKey('ec-p256', 3).privateKey);
      const tampered = new Uint8Array(der);
      tampered[tampered.length - 4]! ^= 0x01;
      const path = writeTemp(dir, 'tampered.csr', encodePem('CERTIFICATE REQUEST', tampered));
      assert.match(openssl(['req', '-in', path, '-verify', '-noout']).output, /verify failure/);
    });

    it('refuses DSA and RSA-PSS keys with ERR_UNSUPPORTED_KEY (requests made by openssl req)', () => {
      const dir = tempDir('csr-keys');
      try {
        const requests: [string, string[], RegExp][] = [
          ['dsa', ['-newkey', `dsa:${dsaParams(dir)}`, '-sha256'], /dsa/],
          [
            'rsa-pss',
            ['-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048', '-sigopt', 'rsa_padding_mode:pss'],
            /rsa-pss/,
          ],
        ];
        for (const [name, args, named] of requests) {
          const out = join(dir, `${name}.csr`);
          const made = openssl([
            'req',
            '-new',
            ...args,
            '-nodes',
            '-keyout',
            join(dir, `${name}.key`),
            '-subj',
            '/CN=x',
            '-out',
            out,
          ]);
          assert.ok(made.ok, made.output);
          const pem = readFileSync(out, 'utf8');
          expectRefusalAs(() => parseCsr(pem), MalformedInputError, ErrorCode.UNSUPPORTED_KEY, named);
        }
      } finally {
        removeDir(dir);
      }
    });
  });
});
