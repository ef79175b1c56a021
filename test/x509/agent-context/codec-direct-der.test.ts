import assert from 'node:assert/strict';
import { ErrorCode } from '../../../src/errors';
import {
  decodeAgentContext,
  decodeDelegationBinding,
  encodeAgentContext,
  encodeDelegationBinding,
  type DelegationBinding,
} from '../../../src/x509/agent-context';
import { bytes, contextWithLinks, expectAgentContextError, sampleBinding, sampleContext } from './fixtures';
import { at, BINDING, CTX, LINK, parseTlv, primitive, PROVENANCE, writeTlv } from './tlv';

const MALFORMED = ErrorCode.MALFORMED_AGENT_CONTEXT;

/** The encoding of a one-link context with provenance.issuedAt's contents replaced by `text`. */
function withIssuedAt(text: string): Uint8Array {
  const root = parseTlv(encodeAgentContext(contextWithLinks(1)));
  at(root, CTX.provenance).children![PROVENANCE.issuedAt] = primitive(0x18, text);
  return writeTlv(root);
}

describe('agent-context codec: the direct DER reader', () => {
  describe('GeneralizedTime', () => {
    it('reads a leap day and the edges of the allowed range', () => {
      for (const [text, iso] of [
        ['20240229120000Z', '2024-02-29T12:00:00.000Z'],
        ['19700101000000Z', '1970-01-01T00:00:00.000Z'],
        ['99991231235959Z', '9999-12-31T23:59:59.000Z'],
      ] as const) {
        assert.equal(decodeAgentContext(withIssuedAt(text)).provenance.issuedAt.toISOString(), iso);
      }
    });

    it('refuses instants that do not exist, naming the field', () => {
      for (const text of [
        '20250229120000Z', // not a leap year
        '21000229120000Z', // century, not a leap year
        '20250431120000Z', // 31 April
        '20250001120000Z', // month 0
        '20251301120000Z', // month 13
        '20250600120000Z', // day 0
        '20250601240000Z', // hour 24
        '20250601126000Z', // minute 60
        '20250601125960Z', // leap second
        '2025060112000aZ', // not a digit
        '2025-6-01120000Z',
        '20250601120000z',
      ]) {
        expectAgentContextError(
          () => decodeAgentContext(withIssuedAt(text)),
          MALFORMED,
          'provenance.issuedAt',
        );
      }
    });
  });

  it('names the element that has the wrong type, down to a binding field and a list item', () => {
    const nonce = parseTlv(encodeAgentContext(contextWithLinks(1)));
    at(nonce, CTX.delegation, 0, LINK.binding).children![BINDING.nonce] = primitive(0x0c, 'nonce');
    expectAgentContextError(
      () => decodeAgentContext(writeTlv(nonce)),
      MALFORMED,
      'delegation[0].binding.nonce',
    );
    const scope = parseTlv(encodeAgentContext(sampleContext({ scopes: ['a', 'b'] })));
    at(scope, CTX.scopes).children![1] = primitive(0x04, 'b');
    expectAgentContextError(() => decodeAgentContext(writeTlv(scope)), MALFORMED, 'scopes[1]');
  });

  it('keeps a leading U+FEFF and astral characters, and refuses a lone surrogate encoded as UTF-8', () => {
    const ctx = sampleContext({ intent: '\ufeff\u{1f916} ok', agentId: 'é\ufeff' });
    assert.deepStrictEqual(decodeAgentContext(encodeAgentContext(ctx)), ctx);
    const root = parseTlv(encodeAgentContext(sampleContext()));
    root.children![CTX.intent] = primitive(0x0c, Uint8Array.of(0x61, 0xed, 0xb0, 0x80));
    expectAgentContextError(() => decodeAgentContext(writeTlv(root)), MALFORMED, 'intent');
  });

  it('returns plain Uint8Array copies: reading from a Buffer works, and later changes to the input do not leak in', () => {
    const ctx = contextWithLinks(1);
    const input = Buffer.from(encodeAgentContext(ctx));
    const decoded = decodeAgentContext(input);
    assert.deepStrictEqual(decoded, ctx);
    input.fill(0);
    assert.deepStrictEqual(decoded, ctx);
  });
});

describe('agent-context codec: decodeDelegationBinding', () => {
  it('reads what encodeDelegationBinding writes', () => {
    const b = sampleBinding();
    assert.deepStrictEqual(decodeDelegationBinding(encodeDelegationBinding(b)), b);
  });

  it('refuses to encode a binding that names no child key (or a partial one)', () => {
    const { childKeySha256: _omit, ...withoutKey } = sampleBinding();
    expectAgentContextError(
      () => encodeDelegationBinding(withoutKey as DelegationBinding),
      ErrorCode.MALFORMED_AGENT_CONTEXT,
      'childKeySha256',
    );
    expectAgentContextError(
      () => encodeDelegationBinding(sampleBinding({ childKeySha256: bytes(31) })),
      ErrorCode.MALFORMED_AGENT_CONTEXT,
      'childKeySha256',
    );
  });

  it('refuses trailing bytes, truncation at every offset, and input that is not bytes', () => {
    const der = encodeDelegationBinding(sampleBinding());
    expectAgentContextError(
      () => decodeDelegationBinding(Uint8Array.from([...der, 0])),
      MALFORMED,
      'trailing',
    );
    for (let n = 0; n < der.length; n++) {
      expectAgentContextError(() => decodeDelegationBinding(der.subarray(0, n)), MALFORMED, 'binding');
    }
    expectAgentContextError(
      () => decodeDelegationBinding('MAA=' as unknown as Uint8Array),
      MALFORMED,
      'binding',
    );
  });

  it('keeps the principal provenance of every kind', () => {
    for (const principalProvenance of [
      'verified',
      'workload',
      'asserted-by:spiffe://example.org/gw',
    ] as const) {
      const b = sampleBinding({ principalProvenance });
      assert.deepStrictEqual(decodeDelegationBinding(encodeDelegationBinding(b)), b);
    }
  });

  it('refuses a version 1 binding (the layout without principalProvenance) as unsupported', () => {
    // Exactly what a version 1 writer produced: version 1, and no principalProvenance element.
    const v1 = parseTlv(encodeDelegationBinding(sampleBinding()));
    v1.children![BINDING.version] = primitive(0x02, Uint8Array.of(1));
    v1.children!.splice(BINDING.principalProvenance, 1);
    expectAgentContextError(
      () => decodeDelegationBinding(writeTlv(v1)),
      ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION,
      'binding.version',
    );
    // Version 2 without the element is malformed, not silently read with a default.
    const missing = parseTlv(encodeDelegationBinding(sampleBinding()));
    missing.children!.splice(BINDING.principalProvenance, 1);
    expectAgentContextError(() => decodeDelegationBinding(writeTlv(missing)), MALFORMED, 'binding');
  });

  it('refuses a principal provenance that is not verified, workload or asserted-by:<SPIFFE ID>', () => {
    for (const bad of ['Verified', 'asserted-by:', 'asserted-by:https://example.org', 'unknown']) {
      const t = parseTlv(encodeDelegationBinding(sampleBinding()));
      t.children![BINDING.principalProvenance] = primitive(0x0c, bad);
      expectAgentContextError(
        () => decodeDelegationBinding(writeTlv(t)),
        MALFORMED,
        'binding.principalProvenance',
      );
    }
    assert.throws(
      () => encodeDelegationBinding(sampleBinding({ principalProvenance: 'root' as 'verified' })),
      /binding\.principalProvenance/,
    );
  });

  it('refuses another binding version as unsupported, an invalid field by name, and oversized input first', () => {
    for (const v of [1, 2, 4]) {
      const other = parseTlv(encodeDelegationBinding(sampleBinding()));
      other.children![BINDING.version] = primitive(0x02, Uint8Array.of(v));
      expectAgentContextError(
        () => decodeDelegationBinding(writeTlv(other)),
        ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION,
        'binding.version',
      );
    }
    const badChild = parseTlv(encodeDelegationBinding(sampleBinding()));
    badChild.children![BINDING.childId] = primitive(0x0c, 'https://example.org/child');
    expectAgentContextError(() => decodeDelegationBinding(writeTlv(badChild)), MALFORMED, 'binding.childId');
    expectAgentContextError(
      () => decodeDelegationBinding(new Uint8Array(16 * 1024 + 1)),
      ErrorCode.AGENT_CONTEXT_TOO_LARGE,
      'binding',
    );
  });
});
