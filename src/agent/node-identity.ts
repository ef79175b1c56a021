/**
 * The node agent's own identity: an SVID from Attest (join token, k8s_psat or x509pop, exactly as any
 * runtime attests), renewed with Renew at half its lifetime. With a data dir it is kept on disk (key 0600,
 * written atomically) so an agent restart does not need a new single-use join token while the SVID lives.
 */
import * as grpc from '@grpc/grpc-js';
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { X509Bundle } from '../bundle';
import { makeDir, writeFileAtomic } from '../internal/secure-file';
import { attestToServer } from '../client/attest';
import { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials } from '../client/server-credentials';
import { InternalError } from '../errors';
import { AttestationServiceClient, type RenewResponse } from '../gen/lanyard/v1/attestation';
import { agentContextExtension, resolveAgentContextOid } from '../x509/agent-context/oid';
import { ParsedCertificate } from '../x509/certificate';
import { createCsr } from '../x509/csr';
import { generateSigningKeyPair } from '../x509/keys';
import { decodePemBlocks, encodePem } from '../x509/pem';

export interface NodeAttestation {
  attestorType: string;
  evidence: Uint8Array;
  /** x509pop: signs the server's nonce with the provisioning key. */
  answerChallenge?: (challenge: Uint8Array) => Uint8Array;
  /** When the attested selectors match several entries. */
  spiffeId?: string;
}

export interface NodeSvid {
  spiffeId: string;
  /** DER, leaf first. */
  chain: Uint8Array[];
  privateKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** Rotation is due at half of (notAfter - receivedAt): notBefore is backdated by the CA. */
  receivedAt: Date;
}

const SVID_FILE = 'agent_svid.pem';
const KEY_FILE = 'agent_svid_key.pem';
const CALL_DEADLINE_MS = 15_000;

export class NodeIdentity {
  private svid: NodeSvid | undefined;
  private readonly agentContextOid: string;

  constructor(
    private readonly opts: {
      server: string;
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
    this.svid = this.load();
  }

  current(): NodeSvid | undefined {
    const s = this.svid;
    return s !== undefined && s.notAfter.getTime() > this.opts.clock().getTime() ? s : undefined;
  }

  /** A valid agent SVID: the current one, renewed past half its life, or a fresh attestation. */
  async ensure(): Promise<NodeSvid> {
    const now = this.opts.clock().getTime();
    const s = this.current();
    if (s === undefined) {
      this.svid = await this.attest();
      this.save();
      return this.svid;
    }
    const half = s.receivedAt.getTime() + (s.notAfter.getTime() - s.receivedAt.getTime()) / 2;
    if (now >= half) {
      this.svid = await this.renew(s);
      this.save();
    }
    return this.svid ?? s;
  }

  private async attest(): Promise<NodeSvid> {
    const a = this.opts.attestation;
    const got = await attestToServer({
      server: this.opts.server,
      bundle: this.opts.bundle(),
      attestorType: a.attestorType,
      evidence: a.evidence,
      ...(a.answerChallenge !== undefined && { answerChallenge: a.answerChallenge }),
      ...(a.spiffeId !== undefined && { spiffeId: a.spiffeId }),
      agentContextOid: this.agentContextOid,
    });
    return toNodeSvid(got.spiffeId, got.chain, got.privateKey, this.opts.clock());
  }

  private async renew(s: NodeSvid): Promise<NodeSvid> {
    const { privateKey } = generateSigningKeyPair('ec-p256');
    const client = new AttestationServiceClient(
      this.opts.server,
      lanyardChannelCredentials(this.opts.bundle(), { privateKey: s.privateKey, chain: s.chain }),
      LANYARD_CHANNEL_OPTIONS,
    );
    try {
      const res = await new Promise<RenewResponse>((resolve, reject) =>
        client.renew(
          { csr: Buffer.from(createCsr(privateKey).der) },
          new grpc.Metadata(),
          { deadline: Date.now() + CALL_DEADLINE_MS },
          (err, r) => (err ? reject(err) : resolve(r)),
        ),
      );
      const chain = res.svid?.certChain ?? [];
      if (chain.length === 0) throw new InternalError('Renew answered without an SVID');
      // Renewed by the same server: a context under another OID means the two disagree; keep the old one.
      agentContextExtension(ParsedCertificate.fromDer(new Uint8Array(chain[0]!)), this.agentContextOid);
      return toNodeSvid(res.svid!.spiffeId, chain, privateKey, this.opts.clock());
    } finally {
      client.close();
    }
  }

  private load(): NodeSvid | undefined {
    if (this.opts.dataDir === undefined) return undefined;
    try {
      const chain = decodePemBlocks(
        fs.readFileSync(path.join(this.opts.dataDir, SVID_FILE), 'utf8'),
        'CERTIFICATE',
      );
      const key = createPrivateKey(fs.readFileSync(path.join(this.opts.dataDir, KEY_FILE), 'utf8'));
      const leaf = ParsedCertificate.fromDer(chain[0]!);
      const id = leaf.uriSans[0];
      if (id === undefined) return undefined;
      // A crash between writing the key and the certificate could pair them wrongly: then attest afresh.
      const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
      if (!spki.equals(Buffer.from(leaf.spkiDer))) return undefined;
      // Saved under another agent_context.oid: the server would not take it either, so attest afresh.
      agentContextExtension(leaf, this.agentContextOid);
      // Loaded from disk: when it was received is unknown, so count from its notBefore (renews sooner, never later).
      return toNodeSvid(id, chain, key, leaf.notBefore);
    } catch {
      // Nothing saved yet, or unreadable: attest afresh.
      return undefined;
    }
  }

  private save(): void {
    const dir = this.opts.dataDir;
    const s = this.svid;
    if (dir === undefined || s === undefined) return;
    makeDir(dir, 0o700);
    writeFileAtomic(
      path.join(dir, KEY_FILE),
      s.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      0o600,
    );
    writeFileAtomic(
      path.join(dir, SVID_FILE),
      s.chain.map((d) => encodePem('CERTIFICATE', d)).join(''),
      0o644,
    );
  }
}

function toNodeSvid(
  spiffeId: string,
  chain: Uint8Array[],
  privateKey: KeyObject,
  receivedAt: Date,
): NodeSvid {
  const leaf = ParsedCertificate.fromDer(new Uint8Array(chain[0]!));
  return {
    spiffeId,
    chain: chain.map((c) => new Uint8Array(c)),
    privateKey,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    receivedAt,
  };
}
