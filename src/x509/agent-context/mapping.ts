/**
 * Moves values between the typed AgentContext and the ASN.1 schema classes: the reference encoding the direct
 * DER codec (context-der-writer.ts, context-der-reader.ts) is tested against, and how tests produce encodings
 * of invalid values. Production code does not use it. No rules here: callers validate (validate.ts) before
 * toAsn and after fromAsn; the only check is the binding's version, which the typed value does not carry.
 * Element by element, by each element's kind, from the tables in schema.ts; bytes are always copied.
 */
import { AgentContextAsn, DelegationBindingAsn, DelegationLinkAsn, fromAsnValue, toAsnValue } from './schema';
import type { AgentContext, DelegationBinding, DelegationLink } from './types';

export function bindingToAsn(b: DelegationBinding): DelegationBindingAsn {
  return toAsnValue(DelegationBindingAsn, b);
}

export function linkToAsn(l: DelegationLink): DelegationLinkAsn {
  return toAsnValue(DelegationLinkAsn, l);
}

export function contextToAsn(c: AgentContext): AgentContextAsn {
  return toAsnValue(AgentContextAsn, c);
}

/** Untrusted until validated: the caller must run assertValidDelegationBinding on the result. */
export function bindingFromAsn(asn: DelegationBindingAsn, field: string): unknown {
  return fromAsnValue(DelegationBindingAsn, asn, field);
}

/** Untrusted until validated: the caller must run assertValidAgentContext on the result. */
export function contextFromAsn(asn: AgentContextAsn): unknown {
  return fromAsnValue(AgentContextAsn, asn, '');
}
