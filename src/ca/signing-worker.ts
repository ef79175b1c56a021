/**
 * A thread of the signing pool: checks CSRs (proof of possession) and signs X509-SVIDs with the CA keys the pool
 * installed. It holds no state beyond those keys and their certificates, logs nothing, and answers every request
 * with the leaf's DER or a typed error's code and message (never a key, never a stack). Requests come in
 * batches (one event-loop turn of the pool's) and are answered in one batch, in order; byte fields go back in a
 * transfer list, so the server's thread neither copies nor re-parses them.
 */
import type { KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { isLanyardError } from '../errors';
import { ownedBytes } from '../internal/worker-script';
import { ParsedCertificate } from '../x509/certificate';
import { parseCsr, type ParsedCsr } from '../x509/csr';
import { signX509SvidLeaf, signX509SvidLeafForKey, type SignedLeaf } from '../x509/profiles';
import { checkCsrSubject } from './csr-subject';
import type {
  BatchReply,
  BatchRequest,
  CsrSignRequest,
  SignRequest,
  WorkerReply,
  WorkerRequest,
} from './signing-protocol';

const authorities = new Map<string, { cert: ParsedCertificate; key: KeyObject }>();
const port = parentPort;
if (port === null) throw new Error('signing-worker runs only as a worker thread');

port.on('message', (batch: BatchRequest) => {
  const replies: WorkerReply[] = [];
  const transfer: ArrayBuffer[] = [];
  // Every CSR of the batch is checked before any leaf is signed: OpenSSL's verifications in a row, then its
  // signatures, cost less than the two alternating (measured: bench-issuance-pool.ts). A CSR check needs no
  // authority, so the installs and retains still apply in the batch's order to the signatures.
  const checked = new Map<CsrSignRequest, () => ParsedCsr>();
  for (const m of batch.requests) if (m.type === 'csr-sign') checked.set(m, checkNow(m));
  for (const m of batch.requests) {
    const reply = handle(m, transfer, checked);
    if (reply !== undefined) replies.push(reply);
  }
  if (replies.length > 0) port.postMessage({ type: 'batch', replies } satisfies BatchReply, transfer);
});

/** The CSR's check done now, its outcome (the key, or the refusal thrown again) read when its leaf is signed. */
function checkNow(m: CsrSignRequest): () => ParsedCsr {
  try {
    const parsed = checkCsrSubject({
      csr: m.csr,
      ...(m.sameKeyAs !== undefined && { sameKeyAs: m.sameKeyAs }),
    });
    return () => parsed;
  } catch (e) {
    return () => {
      throw e;
    };
  }
}

function handle(
  m: WorkerRequest,
  transfer: ArrayBuffer[],
  checked: Map<CsrSignRequest, () => ParsedCsr>,
): WorkerReply | undefined {
  switch (m.type) {
    case 'install':
      authorities.set(m.authorityId, { cert: ParsedCertificate.fromDer(m.certDer), key: m.key });
      return undefined;
    case 'retain':
      for (const id of [...authorities.keys()]) if (!m.authorityIds.includes(id)) authorities.delete(id);
      return undefined;
    case 'csr':
      return answer(m.id, () => {
        const csr = parseCsr(m.csr);
        // Nothing here keeps these bytes: they are given away (copied only if a view on a larger buffer).
        const spki = ownedBytes(csr.spki);
        transfer.push(spki.buffer as ArrayBuffer);
        return { publicKey: csr.publicKey, spki };
      });
    case 'sign':
    case 'csr-sign':
      return answer(m.id, () => {
        const leaf = m.type === 'sign' ? sign(m) : signForCsr(m, checked.get(m) ?? checkNow(m));
        const der = ownedBytes(leaf.der);
        transfer.push(der.buffer as ArrayBuffer);
        return {
          der,
          serialHex: leaf.serialHex,
          notBeforeMs: leaf.notBefore.getTime(),
          notAfterMs: leaf.notAfter.getTime(),
        };
      });
  }
}

function sign(m: SignRequest): SignedLeaf {
  return signX509SvidLeafForKey({ ...leafFields(m), subjectKey: { spki: m.spki, kind: m.keyKind } });
}

/** The CSR checked as on the server's thread (csr-subject.ts), then the leaf for its key, vetted as there. */
function signForCsr(m: CsrSignRequest, checked: () => ParsedCsr): SignedLeaf {
  const { publicKey } = checked();
  return signX509SvidLeaf({ ...leafFields(m), publicKey });
}

function leafFields(m: SignRequest | CsrSignRequest) {
  const issuer = authorities.get(m.authorityId);
  // The pool installs before it signs on the same port, so this is a bug in the pool, never a caller's fault.
  if (issuer === undefined) throw new Error(`authority ${m.authorityId} is not installed in this worker`);
  return {
    spiffeId: m.spiffeId,
    issuer,
    ttlSeconds: m.ttlSeconds,
    now: new Date(m.nowMs),
    ...(m.dnsNames !== undefined ? { dnsNames: m.dnsNames } : {}),
    ...(m.agentContextDer !== undefined ? { agentContextDer: m.agentContextDer } : {}),
    agentContextOid: m.agentContextOid,
  };
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
