import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  decodeAgentContext,
  delegationLinkSha256,
  encodeAgentContext,
  encodeDelegationBinding,
  encodeDelegationLink,
} from '../../../src/x509/agent-context';
import { bytes, contextWithLinks, sampleBinding, sampleContext, sampleLink } from './fixtures';

function roundTrip(ctx: ReturnType<typeof sampleContext>): void {
  const der = encodeAgentContext(ctx);
  const back = decodeAgentContext(der);
  assert.deepStrictEqual(back, ctx);
  assert.deepStrictEqual(encodeAgentContext(back), der, 're-encoding the decoded value gives the same bytes');
}

/** Offset of the first content byte of the outermost TLV. */
function contentStart(der: Uint8Array): number {
  const first = der[1]!;
  return first < 0x80 ? 2 : 2 + (first & 0x7f);
}

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  return Buffer.from(haystack).indexOf(Buffer.from(needle));
}

describe('agent-context codec: round trip', () => {
  it('keeps every field of a context without delegation', () => {
    roundTrip(sampleContext());
  });

  it('keeps every field with one link, the child key included', () => {
    const ctx = contextWithLinks(1);
    roundTrip(ctx);
    assert.deepStrictEqual(
      decodeAgentContext(encodeAgentContext(ctx)).delegation[0]!.binding.childKeySha256,
      bytes(32, 0x22),
    );
  });

  it('keeps the order and content of several links', () => {
    const ctx = contextWithLinks(5);
    ctx.delegation[2] = sampleLink({
      agentId: 'another-child-key',
      binding: sampleBinding({ prevLinkSha256: bytes(32, 9), childKeySha256: bytes(32, 0x77) }),
    });
    roundTrip(ctx);
  });

  it('keeps non-ASCII text, empty intent, empty scope lists and boundary times', () => {
    roundTrip(
      sampleContext({
        agentId: 'agent-ü-日本-🚀',
        intent: '',
        scopes: [],
        principal: {
          id: 'Zoë',
          issuer: 'spiffe://example.org/hr',
          provenance: 'asserted-by:spiffe://example.org/hr',
        },
        provenance: {
          method: 'k8s_psat',
          evidenceSha256: bytes(32, 0),
          issuer: 'spiffe://example.org',
          issuedAt: new Date(0),
        },
        delegation: [
          sampleLink({
            scopes: [],
            notAfter: new Date(Date.UTC(9999, 11, 31, 23, 59, 59)),
            binding: sampleBinding({ scopes: [], nonce: bytes(64, 1) }),
          }),
        ],
      }),
    );
  });

  it('accepts Buffers as input bytes and returns plain Uint8Arrays that do not alias the input', () => {
    const der = Buffer.from(encodeAgentContext(contextWithLinks(1)));
    const back = decodeAgentContext(der);
    assert.equal(Object.getPrototypeOf(back.provenance.evidenceSha256), Uint8Array.prototype);
    der.fill(0);
    assert.deepStrictEqual(back, contextWithLinks(1));
  });

  it('reads a view into a larger buffer at a non-zero offset, and only the bytes of the view', () => {
    const der = encodeAgentContext(contextWithLinks(1));
    const big = new Uint8Array(der.length + 16).fill(0xee);
    big.set(der, 7);
    assert.deepStrictEqual(decodeAgentContext(big.subarray(7, 7 + der.length)), contextWithLinks(1));
  });

  it('writes version 1 and a GeneralizedTime with whole seconds and Z', () => {
    const der = encodeAgentContext(sampleContext());
    const start = contentStart(der);
    assert.deepStrictEqual([...der.subarray(start, start + 3)], [0x02, 0x01, 0x01]);
    assert.ok(indexOfBytes(der, Buffer.from('\x18\x0f20250601120000Z', 'latin1')) > 0);
  });

  it('encodes a binding deterministically, with version 3 first and childKeySha256 after childId', () => {
    const der = encodeDelegationBinding(sampleBinding());
    assert.deepStrictEqual(der, encodeDelegationBinding(sampleBinding()));
    const start = contentStart(der);
    assert.deepStrictEqual([...der.subarray(start, start + 3)], [0x02, 0x01, 0x03]);
    // principalProvenance is signed: its UTF8String sits between principalIssuer and prevLinkSha256.
    const issuer = Buffer.from('\x0c\x17https://idp.example.org\x0c\x08verified\x04\x00', 'latin1');
    assert.ok(indexOfBytes(der, issuer) > 0);
    // childId, then the child key as a plain OCTET STRING (version 2's optional [0] is gone).
    const childThenKey = Buffer.concat([
      Buffer.from('\x0c\x26spiffe://example.org/agent/tool-runner\x04\x20', 'latin1'),
      bytes(32, 0x22),
    ]);
    assert.ok(indexOfBytes(der, childThenKey) > 0);
  });

  it('hashes a link as the SHA-256 of exactly the bytes it occupies inside the context', () => {
    const ctx = contextWithLinks(2);
    const der = encodeAgentContext(ctx);
    const linkDer = encodeDelegationLink(ctx.delegation[1]!);
    assert.ok(indexOfBytes(der, linkDer) > 0);
    const expected = createHash('sha256').update(linkDer).digest();
    assert.deepStrictEqual(Buffer.from(delegationLinkSha256(ctx.delegation[1]!)), expected);
    assert.notDeepStrictEqual(
      delegationLinkSha256(ctx.delegation[0]!),
      delegationLinkSha256(ctx.delegation[1]!),
    );
  });
});
