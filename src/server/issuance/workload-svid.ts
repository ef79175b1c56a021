/** Signing a workload SVID for an entry and packing it as the wire's X509Svid + Bundle. */
import type { CaManager, SignedX509Svid, SvidSubjectKey } from '../../ca';
import type { X509Svid } from '../../gen/lanyard/v1/types';
import type { Entry } from '../../store/types';
import { encodeAgentContext } from '../../x509/agent-context/codec';
import type { AgentContext } from '../../x509/agent-context/types';
import type { SignedLeaf } from '../../x509/profiles';

export type IssueRequest = {
  entry: Entry;
  context: AgentContext;
  /** Used when the entry sets no TTL (x509_svid_ttl_seconds = 0). */
  defaultTtlSeconds: number;
  now: Date;
} & SvidSubjectKey;

/**
 * The workload's key of a request, as CaManager.signX509Svid takes it: a checked KeyObject, or the CSR (and
 * its pin) that the CA checks where it signs, in one signing-pool round trip.
 */
export function subjectKeyOf(req: SvidSubjectKey): SvidSubjectKey {
  if (req.csr === undefined) return { publicKey: req.publicKey };
  return { csr: req.csr, ...(req.sameKeyAs !== undefined && { sameKeyAs: req.sameKeyAs }) };
}

export function svidTtlSeconds(entry: Entry, defaultTtlSeconds: number): number {
  return entry.x509SvidTtlSeconds > 0 ? entry.x509SvidTtlSeconds : defaultTtlSeconds;
}

export async function issueWorkloadSvid(ca: CaManager, req: IssueRequest): Promise<SignedX509Svid> {
  const agentContextDer = encodeAgentContext(req.context);
  const signed = await ca.signX509Svid({
    spiffeId: req.entry.spiffeId,
    ...subjectKeyOf(req),
    ttlSeconds: svidTtlSeconds(req.entry, req.defaultTtlSeconds),
    ...(req.entry.dnsNames.length > 0 ? { dnsNames: [...req.entry.dnsNames] } : {}),
    agentContextDer,
    now: req.now,
  });
  return withIssuedContext(signed, agentContextDer, req.context);
}

/**
 * `signed` with the context its leaf was signed with on the leaf (SignedLeaf.agentContext), for the audit record.
 * It is the caller's context, the one encodeAgentContext validated into `der`, whether the leaf was signed on
 * this thread or in a signing worker: a worker signs the bytes it is handed, and the leaf it returns names the
 * caller's bytes (signing-pool.ts), so nothing the worker sends back is read for it. A leaf whose extension is
 * not those bytes (no signer here does that) is left without it, and its record decodes what it carries.
 */
export function withIssuedContext(
  signed: SignedX509Svid,
  der: Uint8Array,
  context: Readonly<AgentContext>,
): SignedX509Svid {
  if (signed.leaf.agentContextDer !== der) return signed;
  return { ...signed, leaf: { ...signed.leaf, agentContext: context } };
}

export function svidToProto(signed: SignedX509Svid, entry: Entry): X509Svid {
  const certChain = signed.chain.map((der) => Buffer.from(der));
  issuedLeaves.set(certChain[0]!, signed.leaf);
  return {
    spiffeId: entry.spiffeId,
    certChain,
    expiresAt: signed.leaf.notAfter,
    entryId: entry.id,
  };
}

/**
 * The leaf signX509Svid signed, with the fields it was signed with, by the very Buffer that carries its DER in
 * a response: the audit record of the call reads those fields instead of parsing the certificate, which cost as
 * much as signing it.
 */
const issuedLeaves = new WeakMap<Uint8Array, SignedLeaf>();

/** The signed leaf of a response's `certChain[0]` when svidToProto made it; undefined for other bytes. */
export function issuedLeafOf(der: Uint8Array | undefined): SignedLeaf | undefined {
  return der === undefined ? undefined : issuedLeaves.get(der);
}
