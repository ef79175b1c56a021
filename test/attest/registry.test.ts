import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Attestor, Attestors, ATTESTOR_TYPES } from '../../src/attest';
import { ErrorCode } from '../../src/errors';
import { GrpcStatus, grpcStatusOf } from '../../src/internal/grpc-status-map';
import { resolveConfig } from '../../src/server/config';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { issuerKey, jwksOf } from '../support/jwt';
import { rejectsWithCode } from '../support/refusal';
import { certPem, createCa } from '../support/pki';

describe('Attestors registry', () => {
  let dir: string;
  let store: SqliteStore;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-attest-registry-'));
    store = await SqliteStore.open({ file: path.join(dir, 'lanyard.db') });
    fs.writeFileSync(path.join(dir, 'jwks.json'), jwksOf(issuerKey('ES256')));
    fs.writeFileSync(path.join(dir, 'prov-ca.pem'), certPem(createCa('prov.example').cert));
  });
  after(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The server's own config loader, so the registry is proven to take its `attestors` block as it is. */
  function config(attestors: unknown) {
    return resolveConfig({ attestors }, { baseDir: dir, cwd: dir, source: 'test.yaml' }).attestors;
  }

  it('the default configuration enables join_token only', async () => {
    const attestors = await Attestors.fromConfig(config(undefined), { store });
    assert.deepEqual(attestors.types, ['join_token']);
    assert.equal(attestors.get('join_token').type, 'join_token');
  });

  it('every configured attestor is enabled, with its files read at start-up', async () => {
    const attestors = await Attestors.fromConfig(
      config({
        join_token: {},
        k8s_psat: { clusters: [{ name: 'prod', jwks_file: 'jwks.json' }] },
        x509pop: { ca_bundle_file: 'prov-ca.pem' },
      }),
      { store },
    );
    assert.deepEqual(attestors.types, [...ATTESTOR_TYPES].sort());
    for (const t of ATTESTOR_TYPES) assert.equal(attestors.get(t).type, t);
  });

  it('a known but disabled attestor is ERR_ATTESTOR_UNKNOWN (UNIMPLEMENTED), saying it is not enabled', async () => {
    const attestors = await Attestors.fromConfig(
      config({ k8s_psat: { clusters: [{ name: 'prod', jwks_file: 'jwks.json' }] } }),
    );
    assert.deepEqual(attestors.types, ['k8s_psat']);
    const e = await rejectsWithCode(
      Promise.resolve().then(() => attestors.get('join_token')),
      ErrorCode.ATTESTOR_UNKNOWN,
      /attestor "join_token" is not enabled on this server \(enabled: k8s_psat\)/,
    );
    assert.equal(grpcStatusOf(e), GrpcStatus.UNIMPLEMENTED);
  });

  it('an unknown or empty type is ERR_ATTESTOR_UNKNOWN, the client text quoted and cut short', async () => {
    const attestors = await Attestors.fromConfig(config(undefined), { store });
    await rejectsWithCode(
      Promise.resolve().then(() => attestors.get('aws_iid')),
      ErrorCode.ATTESTOR_UNKNOWN,
      /unknown attestor type "aws_iid" \(enabled: join_token\)/,
    );
    const long = await rejectsWithCode(
      Promise.resolve().then(() => attestors.get(`x${'\n'.repeat(500)}`)),
      ErrorCode.ATTESTOR_UNKNOWN,
    );
    assert.ok(!long.message.includes('\n') && long.message.length < 200);
    await rejectsWithCode(
      Promise.resolve().then(() => attestors.get('')),
      ErrorCode.ATTESTOR_UNKNOWN,
      /attestor_type is empty/,
    );
  });

  it('join_token without a store, or two attestors of one type, is a wiring error', async () => {
    await rejectsWithCode(Attestors.fromConfig(config(undefined)), ErrorCode.INVALID_ARGUMENT, /no store/);
    const fake: Attestor = { type: 'x', attest: () => Promise.reject(new Error('unused')) };
    assert.throws(() => new Attestors([fake, fake]), /two attestors for type "x"/);
    assert.deepEqual(new Attestors([fake]).types, ['x']);
  });

  it('an unusable key file stops start-up with ERR_INVALID_CONFIG', async () => {
    fs.writeFileSync(path.join(dir, 'empty.json'), '{"keys": []}');
    await rejectsWithCode(
      Attestors.fromConfig(config({ k8s_psat: { clusters: [{ name: 'prod', jwks_file: 'empty.json' }] } })),
      ErrorCode.INVALID_CONFIG,
      /empty.json: no usable signature key/,
    );
  });
});
