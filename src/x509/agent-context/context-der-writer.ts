/**
 * The agent-context ASN.1 module (schema.ts) written straight to DER, without building asn1-schema object
 * graphs: issuance and delegation encode on every call. The bytes are those of the schema classes, element
 * for element (the differential property test holds the two to that). Callers validate first; nothing here
 * checks a rule.
 */
import { TAG_GENERALIZED_TIME, TAG_INTEGER, TAG_OCTET_STRING, TAG_SEQUENCE } from '../der';
import {
  bytesNode,
  constructedNode,
  derGeneralizedTime,
  type DerNode,
  textNode,
  writeDer,
} from '../der-writer';
import {
  DELEGATION_BINDING_VERSION,
  type AgentContext,
  type DelegationBinding,
  type DelegationLink,
} from './types';

const TAG_UTF8_STRING = 0x0c;

const utf8 = (s: string): DerNode => textNode(TAG_UTF8_STRING, s);
const octets = (b: Uint8Array): DerNode => bytesNode(TAG_OCTET_STRING, b);
const sequence = (...children: DerNode[]): DerNode => constructedNode(TAG_SEQUENCE, children);
// Both versions (context 1, binding 2) are below 128, so the INTEGER is one content octet.
const version = (v: number): DerNode => bytesNode(TAG_INTEGER, Uint8Array.of(v));

function time(date: Date): DerNode {
  // derGeneralizedTime returns the whole element; its 15 content octets follow tag and length.
  return bytesNode(TAG_GENERALIZED_TIME, derGeneralizedTime(date).subarray(2));
}

function scopes(list: readonly string[]): DerNode {
  return constructedNode(TAG_SEQUENCE, list.map(utf8));
}

function bindingNode(b: DelegationBinding): DerNode {
  return sequence(
    version(DELEGATION_BINDING_VERSION),
    octets(b.parentCertSha256),
    utf8(b.childId),
    octets(b.childKeySha256),
    scopes(b.scopes),
    time(b.notAfter),
    time(b.redeemBy),
    octets(b.nonce),
    utf8(b.rootSessionId),
    utf8(b.principalId),
    utf8(b.principalIssuer),
    utf8(b.principalProvenance),
    octets(b.prevLinkSha256),
  );
}

/** [0] IMPLICIT SEQUENCE OF OCTET STRING: constructed, context-specific tag 0. */
export const TAG_PARENT_CHAIN = 0xa0;

function linkNode(l: DelegationLink): DerNode {
  const chain =
    l.parentChain === undefined ? [] : [constructedNode(TAG_PARENT_CHAIN, l.parentChain.map(octets))];
  return sequence(
    utf8(l.spiffeId),
    utf8(l.agentId),
    utf8(l.sessionId),
    scopes(l.scopes),
    time(l.notAfter),
    octets(l.certSha256),
    octets(l.publicKey),
    bindingNode(l.binding),
    octets(l.signature),
    ...chain,
  );
}

export function bindingDer(b: DelegationBinding): Uint8Array {
  return writeDer(bindingNode(b));
}

export function linkDer(l: DelegationLink): Uint8Array {
  return writeDer(linkNode(l));
}

export function contextDer(c: AgentContext): Uint8Array {
  return writeDer(
    sequence(
      version(c.version),
      utf8(c.agentId),
      utf8(c.sessionId),
      utf8(c.rootSessionId),
      sequence(utf8(c.principal.id), utf8(c.principal.issuer), utf8(c.principal.provenance)),
      utf8(c.intent),
      scopes(c.scopes),
      utf8(c.policyVersion),
      sequence(
        utf8(c.provenance.method),
        octets(c.provenance.evidenceSha256),
        utf8(c.provenance.issuer),
        time(c.provenance.issuedAt),
      ),
      constructedNode(TAG_SEQUENCE, c.delegation.map(linkNode)),
    ),
  );
}
