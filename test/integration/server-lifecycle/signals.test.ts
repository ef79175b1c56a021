/**
 * SIGTERM and SIGINT to a real `lanyard server run` process with an attestation in flight: the process stops
 * accepting, lets the call finish (the workload gets its SVID), logs the shutdown, exits 0, and leaves a store
 * that was closed cleanly: no WAL left behind, the drained call's records durable, the shutdown checkpoint
 * signed over the last of them.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { answerX509PopChallenge } from '../../../src/attest';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import {
  AttestParams,
  type AttestResponse,
  type AttestResult,
} from '../../../src/gen/lanyard/v1/attestation';
import { AdminClient } from '../../../src/server/admin-client';
import { TrustDomain } from '../../../src/spiffe';
import { SQLITE_FILE_NAME, SqliteStore } from '../../../src/store/sqlite/sqlite-store';
import { verifyX509Svid } from '../../../src/verify';
import { tempDataDir } from '../../support/test-server';
import { connectPublic, getBundle, newKey } from '../../support/public-client';
import { logLines, spawnServer } from '../../support/server-process';
import { rejectsGrpc } from '../../support/grpc-refusal';
import {
  provisioningEvidencePem,
  provisioningPki,
  type ProvisioningPki,
  writeProvisioningCaFile,
} from '../../support/pki';

const TD = 'lanyard.local';
const SERVER_CHAIN = `spiffe://${TD}/lanyard/server`;

/** A provisioning PKI for x509pop, whose challenge keeps an Attest stream open until the test answers it. */
function provisioning(dir: string): {
  caFile: string;
  evidence: Buffer;
  deviceKey: ProvisioningPki['deviceKey'];
} {
  const pki = provisioningPki('spiffe://provisioning.example/device/d1');
  const caFile = writeProvisioningCaFile(pki, path.join(dir, 'prov-ca.pem'));
  const evidence = Buffer.from(provisioningEvidencePem(pki));
  return { caFile, evidence, deviceKey: pki.deviceKey };
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  describe(`lanyard server run: ${signal} with a call in flight`, function () {
    this.timeout(60_000);

    it('drains the call, logs the shutdown, exits 0 and closes the store', async () => {
      const work = tempDataDir();
      const dataDir = path.join(work, 'data');
      const prov = provisioning(work);
      const configFile = path.join(work, 'server.yaml');
      fs.writeFileSync(
        configFile,
        `listen_address: 127.0.0.1:0\nshutdown_grace: 30s\nattestors:\n  x509pop:\n    ca_bundle_file: ${prov.caFile}\n`,
      );
      const server = spawnServer(['--config', configFile, '--data-dir', dataDir]);
      let admin: AdminClient | undefined;
      let pub: ReturnType<typeof connectPublic> | undefined;
      try {
        const address = await server.ready;
        admin = new AdminClient(path.join(dataDir, 'admin.sock'));
        const spiffeId = `spiffe://${TD}/devices/d1`;
        await admin.createEntry({
          entry: {
            spiffeId,
            selectors: [{ type: 'x509pop', value: 'san:uri:spiffe://provisioning.example/device/d1' }],
          },
        });
        const bundlePem = (await admin.getBundle({})).bundle!.x509AuthoritiesPem;
        admin.close();
        admin = undefined;
        pub = connectPublic(address, bundlePem, TD);

        // The call in flight: params sent, the server's challenge received, the answer held back.
        const call = pub.attestation.attest({ deadline: Date.now() + 45_000 });
        let challenge!: (c: Uint8Array) => void;
        const challenged = new Promise<Uint8Array>((r) => (challenge = r));
        let result: AttestResult | undefined;
        const finished = new Promise<void>((resolve, reject) => {
          call.on('data', (res: AttestResponse) => {
            if (res.step?.$case === 'challenge') challenge(new Uint8Array(res.step.value.challenge));
            else if (res.step?.$case === 'result') result = res.step.value;
          });
          call.on('error', reject);
          call.on('end', resolve);
        });
        const { csr } = newKey();
        call.write({
          step: {
            $case: 'params',
            value: AttestParams.fromPartial({ attestorType: 'x509pop', evidence: prov.evidence, csr }),
          },
        });
        const nonce = await challenged;

        server.child.kill(signal);
        await server.logged('shutting down: draining in-flight calls');
        // It stops accepting: a new connection is refused while the call is still open.
        const late = connectPublic(address, bundlePem, TD);
        try {
          await rejectsGrpc(getBundle(late), grpc.status.UNAVAILABLE);
        } finally {
          late.close();
        }
        assert.equal(server.child.exitCode, null, 'still draining');

        call.write({
          step: {
            $case: 'challengeResponse',
            value: Buffer.from(answerX509PopChallenge(nonce, prov.deviceKey.privateKey)),
          },
        });
        call.end();
        await finished;
        assert.equal(result?.svid?.spiffeId, spiffeId, 'the drained call completed');
        const bundle = X509Bundle.fromPem(TrustDomain.parse(TD), bundlePem);
        assert.equal(verifyX509Svid(result.svid.certChain, bundle).id.toString(), spiffeId);

        assert.equal(await server.exited, 0, server.stderr());
        const msgs = logLines(server.stdout()).map((l) => l.msg);
        const order = ['signal received: closing', 'attested', 'shut down'].map((m) => msgs.indexOf(m));
        assert.ok(
          order.every((i) => i >= 0),
          `log lacks a step: ${JSON.stringify(msgs)}`,
        );
        assert.ok(order[0]! < order[1]! && order[1]! < order[2]!, `order ${JSON.stringify(msgs)}`);
        const signalLine = logLines(server.stdout()).find((l) => l.msg === 'signal received: closing');
        assert.equal(signalLine?.signal, signal);

        // The store was closed: SQLite checkpointed and removed its WAL, the admin socket is gone.
        assert.equal(fs.existsSync(path.join(dataDir, `${SQLITE_FILE_NAME}-wal`)), false, 'no WAL left');
        assert.equal(fs.existsSync(path.join(dataDir, 'admin.sock')), false);
        // It reopens cleanly, with the drained call's audit record and a shutdown checkpoint covering it.
        const store = await SqliteStore.open({ file: path.join(dataDir, SQLITE_FILE_NAME) });
        try {
          const head = await store.audit.head(SERVER_CHAIN);
          const { records } = await store.audit.readRecords(SERVER_CHAIN, 0, 1000);
          assert.ok(
            records.some((r) => JSON.stringify(r).includes(spiffeId)),
            'the attestation is in the audit trail',
          );
          const checkpoints = await store.audit.checkpoints(SERVER_CHAIN);
          assert.equal(checkpoints[checkpoints.length - 1]?.seq, head.seq, 'checkpoint signed at shutdown');
        } finally {
          await store.close();
        }
      } finally {
        admin?.close();
        pub?.close();
        server.kill();
        fs.rmSync(work, { recursive: true, force: true });
      }
    });
  });
}
