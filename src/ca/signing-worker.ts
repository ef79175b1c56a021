/**
 * A thread of the signing pool: checks CSRs (proof of possession) and signs X509-SVIDs with the CA keys the pool
 * installed. It holds no state beyond those keys and their certificates, logs nothing, and answers every request
 * with the leaf's DER or a typed error's code and message (never a key, never a stack).
 */
import type { KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { isLanyardError } from '../errors';
import { ParsedCertificate } from '../x509/certificate';
import { parseCsr } from '../x509/csr';
import { signX509SvidLeaf, type SignedLeaf } from '../x509/profiles';
import type { SignRequest, WorkerReply, WorkerRequest } from './signing-protocol';

const authorities = new Map<string, { cert: ParsedCertificate; key: KeyObject }>();
const port = parentPort;
if (port === null) throw new Error('signing-worker runs only as a worker thread');

port.on('message', (m: WorkerRequest) => {
  switch (m.type) {
    case 'install':
      authorities.set(m.authorityId, { cert: ParsedCertificate.fromDer(m.certDer), key: m.key });
      return;
    case 'retain':
      for (const id of [...authorities.keys()]) if (!m.authorityIds.includes(id)) authorities.delete(id);
      return;
    case 'csr':
      port.postMessage(
        answer(m.id, () => {
          const csr = parseCsr(m.csr);
          return { publicKey: csr.publicKey, spki: csr.spki };
        }),
      );
      return;
    case 'sign':
      port.postMessage(
        answer(m.id, () => {
          const leaf = sign(m);
          return {
            der: leaf.der,
            serialHex: leaf.serialHex,
            notBeforeMs: leaf.notBefore.getTime(),
            notAfterMs: leaf.notAfter.getTime(),
          };
        }),
      );
      return;
  }
});

function sign(m: SignRequest): SignedLeaf {
  const issuer = authorities.get(m.authorityId);
  // The pool installs before it signs on the same port, so this is a bug in the pool, never a caller's fault.
  if (issuer === undefined) throw new Error(`authority ${m.authorityId} is not installed in this worker`);
  return signX509SvidLeaf({
    spiffeId: m.spiffeId,
    publicKey: m.publicKey,
    issuer,
    ttlSeconds: m.ttlSeconds,
    now: new Date(m.nowMs),
    ...(m.dnsNames !== undefined ? { dnsNames: m.dnsNames } : {}),
    ...(m.agentContextDer !== undefined ? { agentContextDer: m.agentContextDer } : {}),
    agentContextOid: m.agentContextOid,
  });
}

type Result =
  | { publicKey: KeyObject; spki: Uint8Array }
  | { der: Uint8Array; serialHex: string; notBeforeMs: number; notAfterMs: number };

function answer(id: number, work: () => Result): WorkerReply {
  try {
    return { id, ok: true, ...work() };
  } catch (e) {
    if (isLanyardError(e)) return { id, ok: false, typed: true, code: e.code, message: e.message };
    // An untyped failure is a bug: its class name and message go back (node:crypto messages name no key bytes).
    const name = e instanceof Error ? e.name : typeof e;
    const message = e instanceof Error ? e.message : 'non-error thrown';
    return { id, ok: false, typed: false, code: name, message };
  }
}
