import assert from 'node:assert/strict';
import { AgentContextError, ErrorCode } from '../../../src/errors';
import { decodeAgentContext, encodeAgentContext } from '../../../src/x509/agent-context';
import { contextWithLinks, expectAgentContextError, sampleContext } from './fixtures';
import { at, BINDING, CTX, LINK, parseTlv, primitive, PROVENANCE, type Tlv, writeTlv } from './tlv';

const MALFORMED = ErrorCode.MALFORMED_AGENT_CONTEXT;
const UNSUPPORTED = ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION;

/** The valid encoding of a one-link context as a tree, for a test to change one node of. */
function tree(): Tlv {
  return parseTlv(encodeAgentContext(contextWithLinks(1)));
}

function binding(root: Tlv): Tlv {
  return at(root, CTX.delegation, 0, LINK.binding);
}

function expectMalformed(root: Tlv): void {
  expectAgentContextError(() => decodeAgentContext(writeTlv(root)), MALFORMED);
}

describe('agent-context codec: strict DER', () => {
  it('the test TLV writer reproduces the encoding byte for byte (so the cases below change only one thing)', () => {
    const der = encodeAgentContext(contextWithLinks(2));
    assert.deepStrictEqual(writeTlv(parseTlv(der)), der);
  });

  describe('version', () => {
    function withVersion(content: number[]): Uint8Array {
      const root = tree();
      root.children![CTX.version] = primitive(0x02, new Uint8Array(content));
      return writeTlv(root);
    }

    it('refuses versions 0, 3, 255 and -1 as unsupported, naming the version', () => {
      for (const v of [[0x00], [0x03], [0x00, 0xff], [0xff]]) {
        expectAgentContextError(() => decodeAgentContext(withVersion(v)), UNSUPPORTED, 'version');
      }
    });

    it('reports a future version as unsupported even when its body is different', () => {
      // A version 3 whose body this reader cannot parse: the version decides the error, not the body.
      expectAgentContextError(
        () => decodeAgentContext(Uint8Array.from([0x30, 0x03, 0x02, 0x01, 0x03])),
        UNSUPPORTED,
      );
      const v2 = writeTlv({
        id: [0x30],
        children: [primitive(0x02, Uint8Array.of(3)), primitive(0x05, new Uint8Array(0))],
      });
      expectAgentContextError(() => decodeAgentContext(v2), UNSUPPORTED, '3 is not supported');
    });

    it('refuses a non-minimal INTEGER 1 and a version of the wrong type as malformed', () => {
      expectAgentContextError(() => decodeAgentContext(withVersion([0x00, 0x01])), MALFORMED, 'version');
      const root = tree();
      root.children![CTX.version] = primitive(0x0c, '1');
      expectAgentContextError(() => decodeAgentContext(writeTlv(root)), MALFORMED, 'version');
    });

    it('refuses a binding of another version as unsupported', () => {
      for (const v of [1, 2, 4]) {
        const root = tree();
        binding(root).children![BINDING.version] = primitive(0x02, Uint8Array.of(v));
        expectAgentContextError(
          () => decodeAgentContext(writeTlv(root)),
          UNSUPPORTED,
          'delegation[0].binding.version',
        );
      }
    });
  });

  describe('framing', () => {
    it('refuses trailing bytes, however few', () => {
      const der = encodeAgentContext(sampleContext());
      for (const extra of [[0x00], [0x30, 0x00], [...der]]) {
        expectAgentContextError(
          () => decodeAgentContext(Uint8Array.from([...der, ...extra])),
          MALFORMED,
          'trailing',
        );
      }
    });

    it('refuses empty input, a lone tag, and input that is not a SEQUENCE', () => {
      for (const input of [[], [0x30], [0x31, 0x00], [0x04, 0x00], [0x30, 0x00]]) {
        expectAgentContextError(() => decodeAgentContext(Uint8Array.from(input)), MALFORMED);
      }
    });

    it('refuses input that is not bytes without throwing anything else', () => {
      for (const input of [undefined, null, 'MAA=', 42, [0x30, 0x00], new ArrayBuffer(2), {}]) {
        expectAgentContextError(() => decodeAgentContext(input as unknown as Uint8Array), MALFORMED, 'input');
      }
    });

    it('refuses the input truncated at every byte offset, with AgentContextError', () => {
      const der = encodeAgentContext(contextWithLinks(2));
      for (let n = 0; n < der.length; n++) {
        assert.throws(
          () => decodeAgentContext(der.subarray(0, n)),
          (e: unknown) => e instanceof AgentContextError && e.code === MALFORMED,
          `truncated to ${n} of ${der.length} bytes`,
        );
      }
    });
  });

  describe('BER encodings that DER forbids', () => {
    it('refuses a long-form length where the short form fits (outer and nested)', () => {
      const small = parseTlv(encodeAgentContext(sampleContext({ scopes: [] })));
      small.lengthForm = 'long';
      expectMalformed(small);
      for (const path of [[CTX.agentId], [CTX.principal], [CTX.delegation, 0, LINK.binding, BINDING.nonce]]) {
        const root = tree();
        at(root, ...path).lengthForm = 'long';
        expectMalformed(root);
      }
    });

    it('refuses a long-form length with a leading zero byte on the outer SEQUENCE', () => {
      const der = encodeAgentContext(contextWithLinks(1));
      assert.equal(der[1], 0x82);
      const padded = Uint8Array.from([0x30, 0x83, 0x00, ...der.subarray(2)]);
      expectAgentContextError(() => decodeAgentContext(padded), MALFORMED, 'minimal');
    });

    it('refuses indefinite lengths (outer, a nested SEQUENCE, the delegation list)', () => {
      for (const path of [[], [CTX.principal], [CTX.delegation], [CTX.delegation, 0, LINK.binding]]) {
        const root = tree();
        at(root, ...path).lengthForm = 'indefinite';
        expectMalformed(root);
      }
    });

    it('refuses constructed strings (OCTET STRING and UTF8String in pieces)', () => {
      const root = tree();
      const evidence = at(root, CTX.provenance, PROVENANCE.evidenceSha256);
      const halves = [evidence.content!.subarray(0, 16), evidence.content!.subarray(16)];
      at(root, CTX.provenance).children![PROVENANCE.evidenceSha256] = {
        id: [0x24],
        children: halves.map((h) => primitive(0x04, h)),
      };
      expectMalformed(root);

      const root2 = tree();
      root2.children![CTX.agentId] = {
        id: [0x2c],
        children: [primitive(0x0c, 'tool-'), primitive(0x0c, 'runner')],
      };
      expectMalformed(root2);
    });

    it('refuses the high-tag-number form for a low tag', () => {
      const root = tree();
      root.children![CTX.agentId] = { id: [0x1f, 0x0c], content: Buffer.from('tool-runner') };
      expectMalformed(root);
    });

    it('refuses GeneralizedTime forms other than YYYYMMDDHHMMSSZ', () => {
      const forms = [
        '20250601120000.0Z',
        '20250601120000.5Z',
        '202506011200Z',
        '20250601120000',
        '20250601120000+0000',
        '20250601130000+0100',
        '0025060112000Z',
        '19500601120000Z',
      ];
      for (const form of forms) {
        const root = tree();
        at(root, CTX.provenance).children![PROVENANCE.issuedAt] = primitive(0x18, form);
        expectAgentContextError(() => decodeAgentContext(writeTlv(root)), MALFORMED, undefined);
      }
      const utc = tree();
      at(utc, CTX.provenance).children![PROVENANCE.issuedAt] = primitive(0x17, '250601120000Z');
      expectMalformed(utc);
    });

    it('refuses invalid and overlong UTF-8', () => {
      for (const content of [[0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xff]]) {
        const root = tree();
        root.children![CTX.intent] = primitive(0x0c, Uint8Array.from(content));
        expectMalformed(root);
      }
    });

    it('refuses a string of another type, a SET for a SEQUENCE, and a tagged childKeySha256', () => {
      const printable = tree();
      printable.children![CTX.agentId] = primitive(0x13, 'tool-runner');
      expectMalformed(printable);

      const set = tree();
      const scopes = set.children![CTX.scopes]!;
      scopes.id = [0x31];
      expectMalformed(set);

      // Version 2's optional [0] form of the child key (implicit and explicit) is not version 3's OCTET STRING.
      const implicit = tree();
      const childKey = binding(implicit).children![BINDING.childKeySha256]!;
      binding(implicit).children![BINDING.childKeySha256] = primitive(0x80, childKey.content!);
      expectMalformed(implicit);
      const explicit = tree();
      binding(explicit).children![BINDING.childKeySha256] = {
        id: [0xa0],
        children: [primitive(0x04, childKey.content!)],
      };
      expectMalformed(explicit);
    });

    it('refuses a binding without childKeySha256, as version 2 allowed, whatever version it claims', () => {
      for (const v of [2, 3]) {
        const root = tree();
        const b = binding(root);
        b.children![BINDING.version] = primitive(0x02, Uint8Array.of(v));
        b.children!.splice(BINDING.childKeySha256, 1);
        expectAgentContextError(
          () => decodeAgentContext(writeTlv(root)),
          v === 3 ? MALFORMED : UNSUPPORTED,
          v === 3 ? 'childKeySha256' : 'delegation[0].binding.version',
        );
      }
    });

    it('refuses unknown extra elements, at the end and in the middle', () => {
      const atEnd = tree();
      atEnd.children!.push(primitive(0x0c, 'extra'));
      expectMalformed(atEnd);

      const inPrincipal = tree();
      at(inPrincipal, CTX.principal).children!.push(primitive(0x0c, 'extra'));
      expectMalformed(inPrincipal);

      const inBinding = tree();
      binding(inBinding).children!.splice(BINDING.scopes, 0, primitive(0x81, new Uint8Array(32)));
      expectMalformed(inBinding);
    });

    it('refuses a missing element', () => {
      const root = tree();
      root.children!.splice(CTX.intent, 1);
      expectMalformed(root);
      const noSignature = tree();
      at(noSignature, CTX.delegation, 0).children!.splice(LINK.signature, 1);
      expectMalformed(noSignature);
    });
  });
});
