import assert from 'node:assert/strict';
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  answerX509PopChallenge,
  StreamChallengeChannel,
  X509POP_CONTEXT,
  X509PopAttestor,
} from '../../src/attest';
import { ErrorCode } from '../../src/errors';
import { GrpcStatus, grpcStatusOf } from '../../src/internal/grpc-status-map';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { encodePem } from '../../src/x509/pem';
import type { IssuedCertificate } from '../../src/x509/profiles';
import { verifyWithKey } from '../../src/x509/keys';
import { openssl, writeTemp } from '../support/x509';
import { AnsweringRuntime, fixedAnswer, silentRuntime } from './helpers/channels';
import { removeDir, tempDir } from '../support/tmp';
import { rejectsWithCode } from '../support/refusal';
import { createCa, provisioningPki } from '../support/pki';

const NOW = new Date();
const enc = (s: string) => new TextEncoder().encode(s);
const pem = (...certs: IssuedCertificate[]) =>
  enc(certs.map((c) => encodePem('CERTIFICATE', c.der)).join(''));
const sha256 = (der: Uint8Array) => createHash('sha256').update(der).digest('hex');
const values = (r: { selectors: { type: string; value: string }[] }) =>
  r.selectors.map((s) => `${s.type}:${s.value}`);

describe('x509pop attestor', () => {
  const pki = provisioningPki();
  const attestor = new X509PopAttestor([pki.root.cert]);

  it('success (SPIFFE-style certificate from our profiles): serial, URI SAN, both CA fingerprints', async () => {
    const runtime = new AnsweringRuntime(pki.deviceKey.privateKey);
    const r = await attestor.attest(pem(pki.device, pki.inter), runtime, NOW);
    assert.deepEqual(values(r), [
      `x509pop:serialnumber:${pki.device.cert.serialHex}`,
      'x509pop:san:uri:spiffe://provisioning.example/device/gpu-node-7',
      `x509pop:ca:fingerprint:${sha256(pki.inter.der)}`,
      `x509pop:ca:fingerprint:${sha256(pki.root.der)}`,
    ]);
    assert.match(pki.device.cert.serialHex, /^[0-9a-f]+$/);
    assert.equal(r.agentIdHint, `x509pop/${sha256(pki.device.der)}`);
    assert.equal(r.canReattest, true);
    assert.deepEqual(
      Buffer.from(r.evidenceSha256),
      createHash('sha256').update(pem(pki.device, pki.inter)).digest(),
    );
    // One challenge: a fresh 32-byte nonce.
    assert.equal(runtime.challenges.length, 1);
    assert.equal(runtime.challenges[0]!.length, 32);
  });

  it('accepts the chain as concatenated DER as well as PEM', async () => {
    const der = Buffer.concat([pki.device.der, pki.inter.der]);
    const r = await attestor.attest(der, new AnsweringRuntime(pki.deviceKey.privateKey), NOW);
    assert.ok(values(r).includes(`x509pop:ca:fingerprint:${sha256(pki.root.der)}`));
  });

  it('wrong CA: a chain to another provisioning root is refused (UNAUTHENTICATED) and never challenged', async () => {
    const runtime = new AnsweringRuntime(pki.deviceKey.privateKey);
    const otherRoot = createCa('other.example', { commonName: 'Other provisioning CA' });
    const e = await rejectsWithCode(
      new X509PopAttestor([otherRoot.cert]).attest(pem(pki.device, pki.inter), runtime, NOW),
      ErrorCode.UNKNOWN_AUTHORITY,
    );
    assert.equal(grpcStatusOf(e), GrpcStatus.UNAUTHENTICATED);
    // A root with the very same name but another key: the issuer is found by name, its signature fails.
    await rejectsWithCode(
      new X509PopAttestor([provisioningPki().root.cert]).attest(pem(pki.device, pki.inter), runtime, NOW),
      ErrorCode.SIGNATURE_INVALID,
    );
    assert.equal(runtime.challenges.length, 0);
  });

  it('a response signed by another key is ERR_CHALLENGE_FAILED (UNAUTHENTICATED)', async () => {
    const e = await rejectsWithCode(
      attestor.attest(
        pem(pki.device, pki.inter),
        new AnsweringRuntime(generateSigningKeyPair('ec-p256').privateKey),
        NOW,
      ),
      ErrorCode.CHALLENGE_FAILED,
      /proof of possession failed/,
    );
    assert.equal(grpcStatusOf(e), GrpcStatus.UNAUTHENTICATED);
    // Nor does the CA's key stand in for the leaf's.
    await rejectsWithCode(
      attestor.attest(pem(pki.device, pki.inter), new AnsweringRuntime(pki.interKey.privateKey), NOW),
      ErrorCode.CHALLENGE_FAILED,
    );
  });

  it('reused nonce: a valid answer captured on one stream fails on the next (each stream gets its own nonce)', async () => {
    const honest = new AnsweringRuntime(pki.deviceKey.privateKey);
    await attestor.attest(pem(pki.device, pki.inter), honest, NOW);
    const replay = fixedAnswer(honest.answers[0]!);
    await rejectsWithCode(
      attestor.attest(pem(pki.device, pki.inter), replay, NOW),
      ErrorCode.CHALLENGE_FAILED,
    );
    assert.notDeepEqual(Buffer.from(replay.challenges[0]!), Buffer.from(honest.challenges[0]!));
  });

  it('garbage responses: ERR_CHALLENGE_FAILED; empty or oversized ones ERR_MALFORMED_EVIDENCE', async () => {
    for (const garbage of [Uint8Array.of(0x30, 0x00), new Uint8Array(64).fill(7), enc('not a signature')]) {
      await rejectsWithCode(
        attestor.attest(pem(pki.device, pki.inter), fixedAnswer(garbage), NOW),
        ErrorCode.CHALLENGE_FAILED,
      );
    }
    await rejectsWithCode(
      attestor.attest(pem(pki.device, pki.inter), fixedAnswer(new Uint8Array(0)), NOW),
      ErrorCode.MALFORMED_EVIDENCE,
    );
    await rejectsWithCode(
      attestor.attest(pem(pki.device, pki.inter), fixedAnswer(new Uint8Array(2000)), NOW),
      ErrorCode.MALFORMED_EVIDENCE,
      /at most 1024/,
    );
  });

  it('a runtime that does not answer in time: ERR_CHALLENGE_TIMEOUT (DEADLINE_EXCEEDED)', async () => {
    const impatient = new X509PopAttestor([pki.root.cert], { challengeTimeoutMs: 50 });
    const e = await rejectsWithCode(
      impatient.attest(pem(pki.device, pki.inter), silentRuntime, NOW),
      ErrorCode.CHALLENGE_TIMEOUT,
      /within 50 ms/,
    );
    assert.equal(grpcStatusOf(e), GrpcStatus.DEADLINE_EXCEEDED);
  });

  it('certificate problems come from path validation: expired, missing intermediate', async () => {
    await rejectsWithCode(
      attestor.attest(
        pem(pki.device, pki.inter),
        new AnsweringRuntime(pki.deviceKey.privateKey),
        new Date(NOW.getTime() + 2 * 3600_000),
      ),
      ErrorCode.CERT_EXPIRED,
    );
    await rejectsWithCode(
      attestor.attest(pem(pki.device), new AnsweringRuntime(pki.deviceKey.privateKey), NOW),
      ErrorCode.UNKNOWN_AUTHORITY,
    );
  });

  it('a CA certificate as the leaf is ERR_KEY_USAGE_INVALID', async () => {
    await rejectsWithCode(
      attestor.attest(pem(pki.inter), new AnsweringRuntime(pki.interKey.privateKey), NOW),
      ErrorCode.KEY_USAGE_INVALID,
      /CA certificate/,
    );
  });

  it('malformed evidence: ERR_MALFORMED_EVIDENCE, and a private key in it is refused without echo', async () => {
    const keyPem = pki.deviceKey.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    for (const [evidence, message] of [
      [enc('hello'), /holds no certificate/],
      [enc('-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n'), /not valid PEM/],
      [enc('-----BEGIN CERTIFICATE-----\nAAAA\n'), /not terminated/],
      [
        enc('-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n'),
        /certificate 0 of the evidence/,
      ],
      [Uint8Array.of(0x30, 0x82, 0x01), /neither PEM nor DER/],
      [Buffer.concat([pki.device.der, Uint8Array.of(0x02, 0x01, 0x00)]), /expected a certificate at offset/],
      [new Uint8Array(0), /empty/],
      [new Uint8Array(70 * 1024).fill(0x41), /more than the 65536/],
      [enc(`${encodePem('CERTIFICATE', pki.device.der)}${keyPem}`), /contains a private key/],
    ] as const) {
      const e = await rejectsWithCode(
        attestor.attest(evidence, new AnsweringRuntime(pki.deviceKey.privateKey), NOW),
        ErrorCode.MALFORMED_EVIDENCE,
        message,
      );
      assert.ok(!e.message.includes('PRIVATE KEY-----') && !e.message.includes(keyPem.split('\n')[1]!));
    }
  });

  it('the signed message is context || 0x00 || nonce, and the client refuses anything but a 32-byte nonce', () => {
    const nonce = new Uint8Array(32).fill(9);
    const sig = answerX509PopChallenge(nonce, pki.deviceKey.privateKey);
    const message = Buffer.concat([Buffer.from(`${X509POP_CONTEXT}\0`), nonce]);
    assert.ok(verifyWithKey(message, sig, pki.deviceKey.publicKey));
    assert.throws(
      () => answerX509PopChallenge(new Uint8Array(31), pki.deviceKey.privateKey),
      /32-byte nonce/,
    );
    assert.throws(
      () => answerX509PopChallenge(new Uint8Array(64), pki.deviceKey.privateKey),
      /32-byte nonce/,
    );
    assert.throws(() => answerX509PopChallenge(nonce, pki.deviceKey.publicKey), /private key/);
  });

  describe('over a StreamChallengeChannel (the server side of the Attest stream, without gRPC)', () => {
    it('delivers the challenge through `send` and the answer through `respond`', async () => {
      const sent: Uint8Array[] = [];
      const channel = new StreamChallengeChannel((c) => {
        sent.push(c);
        // The client answers asynchronously, as a stream message would arrive.
        setImmediate(() => channel.respond(answerX509PopChallenge(c, pki.deviceKey.privateKey)));
      });
      const r = await attestor.attest(pem(pki.device, pki.inter), channel, NOW);
      assert.equal(sent.length, 1);
      assert.ok(r.selectors.length > 0);
      // The attestation is over: a late or second answer is a protocol error, never taken for a new challenge.
      assert.throws(
        () => channel.respond(new Uint8Array(8)),
        (e: { code: string }) => e.code === ErrorCode.INVALID_ARGUMENT,
      );
    });

    it('a stream that ends before the answer rejects the attestation with the reason given', async () => {
      const channel = new StreamChallengeChannel(() => {
        setImmediate(() => channel.close());
      });
      await rejectsWithCode(
        attestor.attest(pem(pki.device, pki.inter), channel, NOW),
        ErrorCode.INVALID_ARGUMENT,
        /stream ended/,
      );
      await rejectsWithCode(channel.challenge(new Uint8Array(32)), ErrorCode.INVALID_ARGUMENT);
    });

    it('one outstanding challenge at a time; an unsolicited answer is refused', async () => {
      const channel = new StreamChallengeChannel(() => undefined);
      assert.throws(() => channel.respond(new Uint8Array(8)), /without an outstanding challenge/);
      const first = channel.challenge(new Uint8Array(32));
      await rejectsWithCode(channel.challenge(new Uint8Array(32)), ErrorCode.INTERNAL, /already outstanding/);
      channel.respond(Uint8Array.of(1));
      assert.deepEqual(await first, Uint8Array.of(1));
    });
  });
});

describe('x509pop attestor with an OpenSSL-made provisioning PKI (plain CN, DNS SAN)', () => {
  // OpenSSL starts validity at the current whole second: attest a little after the moment of the call.
  const soon = () => new Date(Date.now() + 2000);
  let dir: string;
  let caFile: string;
  let leafPem: string;
  let leafKey: KeyObject;

  function issueLeaf(name: string, keyUsage: string, keyArgs: string[]): { certPem: string; key: KeyObject } {
    const ext = writeTemp(
      dir,
      `${name}.ext`,
      [
        'basicConstraints=critical,CA:FALSE',
        `keyUsage=critical,${keyUsage}`,
        'subjectAltName=DNS:node-1.example',
        'subjectKeyIdentifier=hash',
        'authorityKeyIdentifier=keyid',
      ].join('\n'),
    );
    const key = path.join(dir, `${name}.key`);
    const csr = path.join(dir, `${name}.csr`);
    const cert = path.join(dir, `${name}.pem`);
    run([
      'req',
      '-new',
      ...keyArgs,
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      '/O=Example/CN=node-1.example',
    ]);
    run([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caFile,
      '-CAkey',
      path.join(dir, 'ca.key'),
      '-set_serial',
      '0x00c0ffee42',
      '-days',
      '1',
      '-sha256',
      '-extfile',
      ext,
      '-out',
      cert,
    ]);
    return { certPem: fs.readFileSync(cert, 'utf8'), key: createPrivateKey(fs.readFileSync(key)) };
  }

  function run(args: string[]): void {
    const r = openssl(args);
    assert.ok(r.ok, r.output);
  }

  before(() => {
    dir = tempDir('attest-x509pop');
    caFile = path.join(dir, 'ca.pem');
    run([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      path.join(dir, 'ca.key'),
      '-out',
      caFile,
      '-subj',
      '/CN=Example Provisioning CA',
      '-days',
      '2',
      '-sha256',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    const leaf = issueLeaf('leaf', 'digitalSignature', ['-newkey', 'rsa:2048']);
    leafPem = leaf.certPem;
    leafKey = leaf.key;
  });
  after(() => removeDir(dir));

  it('success: subject CN, DNS SAN, serial and the root fingerprint; CA bundle read from the file', async () => {
    const attestor = await X509PopAttestor.fromFile(caFile);
    const r = await attestor.attest(enc(leafPem), new AnsweringRuntime(leafKey), soon());
    const caDer = Buffer.from(
      fs.readFileSync(caFile, 'utf8').split('-----')[2]!.replace(/\s+/g, ''),
      'base64',
    );
    assert.deepEqual(values(r), [
      'x509pop:subject:cn:node-1.example',
      'x509pop:serialnumber:c0ffee42',
      'x509pop:san:dns:node-1.example',
      `x509pop:ca:fingerprint:${sha256(caDer)}`,
    ]);
  });

  it('a leaf whose keyUsage lacks digitalSignature is ERR_KEY_USAGE_INVALID before any challenge', async () => {
    const attestor = await X509PopAttestor.fromFile(caFile);
    const noSign = issueLeaf('nosign', 'keyEncipherment', ['-newkey', 'rsa:2048']);
    const runtime = new AnsweringRuntime(noSign.key);
    await rejectsWithCode(
      attestor.attest(enc(noSign.certPem), runtime, soon()),
      ErrorCode.KEY_USAGE_INVALID,
      /digitalSignature/,
    );
    assert.equal(runtime.challenges.length, 0);
  });

  it('a CA bundle file that cannot be used stops start-up with ERR_INVALID_CONFIG', async () => {
    for (const [text, message] of [
      ['nothing here', /no CERTIFICATE PEM block/],
      [
        `${fs.readFileSync(caFile, 'utf8')}${fs.readFileSync(path.join(dir, 'ca.key'), 'utf8')}`,
        /private key/,
      ],
    ] as const) {
      const file = writeTemp(dir, 'bundle.pem', text);
      await rejectsWithCode(X509PopAttestor.fromFile(file), ErrorCode.INVALID_CONFIG, message);
    }
    await rejectsWithCode(
      X509PopAttestor.fromFile(path.join(dir, 'missing.pem')),
      ErrorCode.INVALID_CONFIG,
      /missing.pem/,
    );
  });
});
