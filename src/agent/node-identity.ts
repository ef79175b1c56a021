/**
 * The node agent's own identity: an SVID from Attest (join token, k8s_psat or x509pop, exactly as any
 * runtime attests), renewed with Renew at half its lifetime. With a data dir it is kept on disk (key 0600,
 * written atomically) so an agent restart does not need a new single-use join token while the SVID lives.
 */
import * as grpc from '@grpc/grpc-js';
import * as path from 'node:path';
import { X509Bundle } from '../bundle';
import { makeDir, writeFileAtomic } from '../internal/secure-file';
import { attestToServer } from '../client/attest';
import { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials } from '../client/server-credentials';
import type { ServerEndpoints } from '../client/server-endpoints';
import { InternalError } from '../errors';
import { AttestationServiceClient, type RenewResponse } from '../gen/lanyard/v1/attestation';
import { loadX509Svid, toX509Svid, type X509Svid } from '../svid/x509-svid';
import { resolveAgentContextOid } from '../x509/agent-context/oid';
import { createCsr } from '../x509/csr';
import { generateSigningKeyPair } from '../x509/keys';

export interface NodeAttestation {
  attestorType: string;
  evidence: Uint8Array;
  /** x509pop: signs the server's nonce with the provisioning key. */
  answerChallenge?: (challenge: Uint8Array) => Uint8Array;
  /** When the attested selectors match several entries. */
  spiffeId?: string;
}

/** The agent's SVID and when it arrived: rotation is due at half of (notAfter - receivedAt), as notBefore is backdated. */
interface HeldSvid {
  readonly svid: X509Svid;
  readonly receivedAt: Date;
}

const SVID_FILE = 'agent_svid.pem';
const KEY_FILE = 'agent_svid_key.pem';
const CALL_DEADLINE_MS = 15_000;

export class NodeIdentity {
  private held: HeldSvid | undefined;
  private readonly agentContextOid: string;

  constructor(
    private readonly opts: {
      servers: ServerEndpoints;
      /** The bootstrap bundle; replaced by the server's current one after each sync. */
      bundle: () => X509Bundle;
      attestation: NodeAttestation;
      dataDir?: string;
      clock: () => Date;
      /** The server's `agent_context.oid`: the agent's own SVID must carry its context there. */
      agentContextOid?: string;
    },
  ) {
    this.agentContextOid = resolveAgentContextOid(opts.agentContextOid);
    this.held = this.load();
  }

  current(): X509Svid | undefined {
    const s = this.held?.svid;
    return s !== undefined && s.notAfter.getTime() > this.opts.clock().getTime() ? s : undefined;
  }

  /** A valid agent SVID: the current one, renewed past half its life, or a fresh attestation. */
  async ensure(): Promise<X509Svid> {
    const now = this.opts.clock().getTime();
    const s = this.current();
    if (s === undefined || this.held === undefined) {
      this.held = await this.attest();
      this.save();
      return this.held.svid;
    }
    const { receivedAt } = this.held;
    const half = receivedAt.getTime() + (s.notAfter.getTime() - receivedAt.getTime()) / 2;
    if (now >= half) {
      this.held = await this.renew(s);
      this.save();
    }
    return this.held.svid;
  }

  private async attest(): Promise<HeldSvid> {
    const a = this.opts.attestation;
    const got = await this.opts.servers.call((server) =>
      attestToServer({
        server,
        bundle: this.opts.bundle(),
        attestorType: a.attestorType,
        evidence: a.evidence,
        ...(a.answerChallenge !== undefined && { answerChallenge: a.answerChallenge }),
        ...(a.spiffeId !== undefined && { spiffeId: a.spiffeId }),
        agentContextOid: this.agentContextOid,
      }),
    );
    return { svid: got.svid, receivedAt: this.opts.clock() };
  }

  private async renew(s: X509Svid): Promise<HeldSvid> {
    const { privateKey } = generateSigningKeyPair('ec-p256');
    const csr = Buffer.from(createCsr(privateKey).der);
    const credentials = lanyardChannelCredentials(this.opts.bundle(), s);
    const res = await this.opts.servers.call(async (server) => {
      const client = new AttestationServiceClient(server, credentials, LANYARD_CHANNEL_OPTIONS);
      try {
        return await new Promise<RenewResponse>((resolve, reject) =>
          client.renew({ csr }, new grpc.Metadata(), { deadline: Date.now() + CALL_DEADLINE_MS }, (err, r) =>
            err ? reject(err) : resolve(r),
          ),
        );
      } finally {
        client.close();
      }
    });
    const chain = res.svid?.certChain ?? [];
    if (chain.length === 0) throw new InternalError('Renew answered without an SVID');
    // Renewed by a server of the same database: a context under another OID means the two disagree; keep the
    // old one.
    const svid = toX509Svid(
      chain.map((c) => new Uint8Array(c)),
      privateKey,
      { agentContextOid: this.agentContextOid },
    );
    return { svid, receivedAt: this.opts.clock() };
  }

  private load(): HeldSvid | undefined {
    if (this.opts.dataDir === undefined) return undefined;
    try {
      // A crash between writing the key and the certificate could pair them wrongly, and a change of
      // agent_context.oid leaves an SVID the server would not take either: then attest afresh.
      const svid = loadX509Svid(
        path.join(this.opts.dataDir, SVID_FILE),
        path.join(this.opts.dataDir, KEY_FILE),
        { agentContextOid: this.agentContextOid },
      );
      // Loaded from disk: when it was received is unknown, so count from its notBefore (renews sooner, never later).
      return { svid, receivedAt: svid.chain[0]!.notBefore };
    } catch {
      // Nothing saved yet, or unreadable: attest afresh.
      return undefined;
    }
  }

  private save(): void {
    const dir = this.opts.dataDir;
    const s = this.held?.svid;
    if (dir === undefined || s === undefined) return;
    const { certificates, key } = s.marshal();
    makeDir(dir, 0o700);
    writeFileAtomic(path.join(dir, KEY_FILE), key, 0o600);
    writeFileAtomic(path.join(dir, SVID_FILE), certificates, 0o644);
  }
}
