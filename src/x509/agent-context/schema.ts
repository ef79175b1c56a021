/*
 * ASN.1 module of the agent-context extension (extnValue of a non-critical extension, DER).
 * The specification is the module docs/design/agent-context.asn1 (an asn1c-compiled decoder holds Lanyard's
 * bytes to it in test/integration/interop/agent-context-asn1.test.ts). The classes below are its reference implementation
 * (used by tests and the "before" benchmark); codec.ts reads and writes it directly as DER and enforces the
 * constraints.
 *
 * Why the public key is an OCTET STRING holding SPKI DER rather than an embedded SubjectPublicKeyInfo:
 * every field here is then re-encoded from plain values, which is what makes the decoder's DER check
 * (re-encode and compare bytes) sound; an embedded SPKI would carry an open-type algorithm parameter that
 * the ASN.1 library re-emits as it found it. The key itself is parsed, strictly, by node:crypto when the
 * link's signature is checked.
 *
 * Each SEQUENCE is written once, as a table of its elements in wire order (do not reorder); the class the ASN.1
 * library parses into and serialises from is made from that table, and so is the mapping to and from the
 * typed values (mapping.ts), by the kind of each element.
 */
import { AsnProp, AsnPropTypes } from '@peculiar/asn1-schema';
import { ErrorCode } from '../../errors';
import { fail } from './field-rules';
import { DELEGATION_BINDING_VERSION } from './types';

/**
 * One element of a SEQUENCE: how the ASN.1 library encodes it, its empty value, and how a typed value maps to
 * it and back. OCTET STRING values are ArrayBuffers here because that is what the ASN.1 library reads and
 * writes; they are always copied, so an encoded value never aliases the caller's arrays nor a decoded one the
 * input.
 */
export interface AsnElement<A> {
  readonly prop: Parameters<typeof AsnProp>[0];
  empty(): A;
  toAsn(value: unknown): A;
  // A method, so that a table of elements of any value type is a table of AsnElement<unknown>.
  fromAsn(asn: A, field: string): unknown;
}

const same = <T>(): Pick<AsnElement<T>, 'toAsn' | 'fromAsn'> => ({
  toAsn: (v) => v as T,
  fromAsn: (a) => a,
});

function copyToBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}

const copyFromBuffer = (buffer: ArrayBuffer): Uint8Array => new Uint8Array(buffer.slice(0));

const utf8: AsnElement<string> = { prop: { type: AsnPropTypes.Utf8String }, empty: () => '', ...same() };
const integer: AsnElement<number> = { prop: { type: AsnPropTypes.Integer }, empty: () => 0, ...same() };
/**
 * An INTEGER version the typed value does not carry (one version is read): written as `version`, and a value
 * that reads otherwise is refused here, as no later check sees it.
 */
function fixedVersion(version: number): AsnElement<number> {
  return {
    prop: integer.prop,
    empty: () => 0,
    toAsn: () => version,
    fromAsn: (a, field) => {
      if (a !== version) {
        fail(
          ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION,
          field,
          `${String(a)} is not supported (only ${version})`,
        );
      }
      return undefined;
    },
  };
}
const time: AsnElement<Date> = {
  prop: { type: AsnPropTypes.GeneralizedTime },
  empty: () => new Date(0),
  toAsn: (v) => new Date((v as Date).getTime()),
  fromAsn: (a) => a,
};
const octets: AsnElement<ArrayBuffer> = {
  prop: { type: AsnPropTypes.OctetString },
  empty: () => new ArrayBuffer(0),
  toAsn: (v) => copyToBuffer(v as Uint8Array),
  fromAsn: copyFromBuffer,
};
const utf8List: AsnElement<string[]> = {
  prop: { type: AsnPropTypes.Utf8String, repeated: 'sequence' },
  empty: () => [],
  toAsn: (v) => [...(v as string[])],
  fromAsn: (a) => [...a],
};
/** parentChain: [0] IMPLICIT SEQUENCE OF OCTET STRING OPTIONAL (absent in a context of version 1). */
const optionalOctetsList: AsnElement<ArrayBuffer[] | undefined> = {
  prop: { type: AsnPropTypes.OctetString, repeated: 'sequence', context: 0, implicit: true, optional: true },
  empty: () => undefined,
  toAsn: (v) => (v === undefined ? undefined : (v as Uint8Array[]).map(copyToBuffer)),
  fromAsn: (a) => a?.map(copyFromBuffer),
};

type Elements = Record<string, AsnElement<unknown>>;
/** The class's instance: one property per element, of the element's ASN.1 value type. */
export type AsnValue<E extends Elements> = {
  -readonly [K in keyof E]: E[K] extends AsnElement<infer A> ? A : never;
};
/** A SEQUENCE class made from its element table; `elements` keeps the table for the mapping. */
export interface AsnSequence<E extends Elements> {
  new (): AsnValue<E>;
  readonly elements: E;
}

function sequenceClass<E extends Elements>(name: string, elements: E): AsnSequence<E> {
  const cls = {
    [name]: class {
      constructor() {
        for (const [key, element] of Object.entries(elements)) {
          (this as Record<string, unknown>)[key] = element.empty();
        }
      }
    },
  }[name]!;
  // Decorating in table order is what fixes the SEQUENCE's element order.
  for (const [key, element] of Object.entries(elements)) AsnProp(element.prop)(cls.prototype, key);
  return Object.assign(cls, { elements }) as unknown as AsnSequence<E>;
}

/** A SEQUENCE nested as one element; its typed value maps element by element too. */
function nested<E extends Elements>(cls: AsnSequence<E>): AsnElement<AsnValue<E>> {
  return {
    prop: { type: cls },
    empty: () => new cls(),
    toAsn: (v) => toAsnValue(cls, v),
    fromAsn: (a, field) => fromAsnValue(cls, a, field),
  };
}

function nestedList<E extends Elements>(cls: AsnSequence<E>): AsnElement<AsnValue<E>[]> {
  return {
    prop: { type: cls, repeated: 'sequence' },
    empty: () => [],
    toAsn: (v) => (v as unknown[]).map((x) => toAsnValue(cls, x)),
    fromAsn: (a, field) => a.map((x, i) => fromAsnValue(cls, x, `${field}[${i}]`)),
  };
}

/** The class instance for a typed value; `value` names every element by the same key. */
export function toAsnValue<E extends Elements>(cls: AsnSequence<E>, value: unknown): AsnValue<E> {
  const asn = new cls();
  const from = value as Record<string, unknown>;
  for (const [key, element] of Object.entries(cls.elements)) {
    (asn as Record<string, unknown>)[key] = element.toAsn(from[key]);
  }
  return asn;
}

/**
 * The typed value (unvalidated) of a parsed instance; an absent optional element, and a fixed version, are
 * left out. `field` names the instance in errors ('' for the outermost).
 */
export function fromAsnValue<E extends Elements>(
  cls: AsnSequence<E>,
  asn: AsnValue<E>,
  field: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, element] of Object.entries(cls.elements)) {
    const v = element.fromAsn((asn as Record<string, unknown>)[key], field === '' ? key : `${field}.${key}`);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

export const PrincipalAsn = sequenceClass('PrincipalAsn', { id: utf8, issuer: utf8, provenance: utf8 });
export type PrincipalAsn = InstanceType<typeof PrincipalAsn>;

export const TokenProvenanceAsn = sequenceClass('TokenProvenanceAsn', {
  method: utf8,
  evidenceSha256: octets,
  issuer: utf8,
  issuedAt: time,
});
export type TokenProvenanceAsn = InstanceType<typeof TokenProvenanceAsn>;

export const DelegationBindingAsn = sequenceClass('DelegationBindingAsn', {
  version: fixedVersion(DELEGATION_BINDING_VERSION),
  parentCertSha256: octets,
  childId: utf8,
  childKeySha256: octets,
  scopes: utf8List,
  notAfter: time,
  redeemBy: time,
  nonce: octets,
  rootSessionId: utf8,
  principalId: utf8,
  principalIssuer: utf8,
  principalProvenance: utf8,
  prevLinkSha256: octets,
});
export type DelegationBindingAsn = InstanceType<typeof DelegationBindingAsn>;

export const DelegationLinkAsn = sequenceClass('DelegationLinkAsn', {
  spiffeId: utf8,
  agentId: utf8,
  sessionId: utf8,
  scopes: utf8List,
  notAfter: time,
  certSha256: octets,
  publicKey: octets,
  binding: nested(DelegationBindingAsn),
  signature: octets,
  parentChain: optionalOctetsList,
});
export type DelegationLinkAsn = InstanceType<typeof DelegationLinkAsn>;

export const AgentContextAsn = sequenceClass('AgentContextAsn', {
  version: integer,
  agentId: utf8,
  sessionId: utf8,
  rootSessionId: utf8,
  principal: nested(PrincipalAsn),
  intent: utf8,
  scopes: utf8List,
  policyVersion: utf8,
  provenance: nested(TokenProvenanceAsn),
  delegation: nestedList(DelegationLinkAsn),
});
export type AgentContextAsn = InstanceType<typeof AgentContextAsn>;
