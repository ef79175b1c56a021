/**
 * The agent-context OID as a setting: the writer puts the context under the configured OID, the verifier reads
 * it only there, and a Lanyard context under any other OID (the default, a retired one, a custom one) is refused
 * with AgentContextOidMismatchError naming both OIDs, never read as a certificate without context.
 */
import assert from 'node:assert/strict';
import { X509Bundle } from '../../src/bundle';
import { signGrant } from '../../src/client/delegation';
import { toX509Svid } from '../../src/svid/x509-svid';
import { AgentContextError, AgentContextOidMismatchError, ErrorCode } from '../../src/errors';
import { grpcStatusOf } from '../../src/internal/grpc-status-map';
import { TrustDomain } from '../../src/spiffe';
import { VerificationCache, verifyAgentContext, verifyX509Svid } from '../../src/verify';
import { encodeAgentContext } from '../../src/x509/agent-context/codec';
import {
  DEFAULT_AGENT_CONTEXT_OID,
  readAgentContext,
  resolveAgentContextOid,
  RETIRED_AGENT_CONTEXT_OIDS,
} from '../../src/x509/agent-context/oid';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { issueX509Svid } from '../../src/x509/profiles';
import { issueSvidWithRawContextOid } from '../support/raw-oid';
import { asIssuer, baseContext, createCa, TD } from '../support/pki';
import { expectRefusal } from '../support/refusal';

const CUSTOM = '1.3.6.1.4.1.99999.7.1';
const RETIRED = RETIRED_AGENT_CONTEXT_OIDS[0]!;
const ID = `spiffe://${TD}/agent/planner`;

describe('agent-context OID', () => {
  const ca = createCa();
  const bundle = new X509Bundle(TrustDomain.parse(TD), { x509Authorities: [ca.cert] });
  const context = baseContext({ agentId: 'planner', sessionId: 'session-1', scopes: ['docs:read'] });
  const key = generateSigningKeyPair('ec-p256');
  const issue = (agentContextOid?: string, der = encodeAgentContext(context)) =>
    issueX509Svid({
      spiffeId: ID,
      publicKey: key.publicKey,
      issuer: asIssuer(ca),
      ttlSeconds: 600,
      agentContextDer: der,
      ...(agentContextOid !== undefined ? { agentContextOid } : {}),
    }).cert;

  function expectMismatch(fn: () => unknown, expected: string, found: string): AgentContextOidMismatchError {
    const e = expectRefusal(fn, ErrorCode.AGENT_CONTEXT_OID_MISMATCH);
    assert.ok(e instanceof AgentContextOidMismatchError);
    assert.ok(e instanceof AgentContextError, 'a subclass of AgentContextError');
    assert.equal(e.expectedOid, expected);
    assert.equal(e.foundOid, found);
    assert.ok(e.message.includes(expected) && e.message.includes(found), e.message);
    assert.ok(e.message.includes(ID), 'names the certificate');
    assert.equal(grpcStatusOf(e), 16, 'UNAUTHENTICATED');
    return e;
  }

  describe('validating a configured OID', () => {
    it('takes the default and any dotted OID whose arcs are below 2^28', () => {
      assert.equal(DEFAULT_AGENT_CONTEXT_OID, '1.3.6.1.4.1.262144.1.1');
      assert.equal(resolveAgentContextOid(undefined), DEFAULT_AGENT_CONTEXT_OID);
      for (const ok of [CUSTOM, '2.999.1', '0.9.2342.19200300.100.1', `1.3.${2 ** 28 - 1}`, '1.2']) {
        assert.equal(resolveAgentContextOid(ok), ok);
      }
    });

    it('refuses anything else with ERR_INVALID_AGENT_CONTEXT_OID, naming the setting', () => {
      const bad = [
        '',
        '1',
        '3.1.2',
        '1.40.1',
        '1.3.06.1',
        '1.3.6.',
        ' 1.3.6',
        '1.3.6.1.4.1.-1',
        'urn:oid:1.3.6',
        `1.3.6.1.4.1.${2 ** 28}`,
        `1.3.6.1.4.1.${2 ** 31}.1`,
        RETIRED,
        `2.${2 ** 28}`,
      ];
      for (const oid of bad) {
        expectRefusal(
          () => resolveAgentContextOid(oid, 'agent_context.oid'),
          ErrorCode.INVALID_AGENT_CONTEXT_OID,
        );
      }
      const e = expectRefusal(
        () => resolveAgentContextOid(`1.3.6.1.4.1.${2 ** 31}.1`, '--agent-context-oid'),
        ErrorCode.INVALID_AGENT_CONTEXT_OID,
      );
      assert.match(e.message, /--agent-context-oid/);
      assert.match(e.message, /2\^28/);
      // Refused before the verifier looks at any certificate.
      expectRefusal(
        () => verifyX509Svid([issue()], bundle, { agentContextOid: '1.3.6.1.4.1.4294967296', cache: null }),
        ErrorCode.INVALID_AGENT_CONTEXT_OID,
      );
      assert.throws(() => issue('2.25.1.268435456'), /2\^28/);
    });
  });

  describe('writing and reading', () => {
    it('the default writer and reader use 1.3.6.1.4.1.262144.1.1, non-critical', () => {
      const cert = issue();
      const ext = cert.extension(DEFAULT_AGENT_CONTEXT_OID);
      assert.ok(ext !== undefined && !ext.critical);
      const v = verifyX509Svid([cert], bundle, { cache: null });
      assert.equal(v.context?.sessionId, 'session-1');
    });

    it('a custom OID is written in place of the default and read by a verifier configured with it', () => {
      const cert = issue(CUSTOM);
      assert.equal(cert.extension(DEFAULT_AGENT_CONTEXT_OID), undefined);
      assert.ok(cert.extension(CUSTOM) !== undefined);
      const v = verifyX509Svid([cert], bundle, { agentContextOid: CUSTOM, cache: null });
      assert.equal(v.context?.agentId, 'planner');
      assert.deepEqual(readAgentContext(cert, CUSTOM)?.scopes, ['docs:read']);
    });
  });

  describe('a mismatch fails closed, naming both OIDs', () => {
    it('a default verifier refuses a context under a custom OID', () => {
      expectMismatch(
        () => verifyX509Svid([issue(CUSTOM)], bundle, { cache: null }),
        DEFAULT_AGENT_CONTEXT_OID,
        CUSTOM,
      );
    });

    it('a custom verifier refuses a context under the default OID', () => {
      expectMismatch(
        () => verifyX509Svid([issue()], bundle, { agentContextOid: CUSTOM, cache: null }),
        CUSTOM,
        DEFAULT_AGENT_CONTEXT_OID,
      );
    });

    it('a verifier configured for one custom OID refuses a context under another custom OID', () => {
      expectMismatch(
        () =>
          verifyX509Svid([issue('1.3.6.1.4.1.99999.8')], bundle, { agentContextOid: CUSTOM, cache: null }),
        CUSTOM,
        '1.3.6.1.4.1.99999.8',
      );
    });

    it('the retired 2.25 UUID OID is named as such, whatever its value holds', () => {
      for (const value of [encodeAgentContext(context), Uint8Array.of(0x05, 0x00)]) {
        const cert = issueSvidWithRawContextOid({
          spiffeId: ID,
          publicKey: key.publicKey,
          issuer: ca,
          contextOid: RETIRED,
          contextDer: value,
        });
        const e = expectMismatch(
          () => verifyX509Svid([cert], bundle, { cache: null }),
          DEFAULT_AGENT_CONTEXT_OID,
          RETIRED,
        );
        assert.match(e.message, /earlier Lanyard builds/);
      }
    });

    it('a verifier that shares its cache with one of another OID still refuses (the cache is keyed by OID)', () => {
      const cache = new VerificationCache();
      const cert = issue(CUSTOM);
      assert.ok(verifyX509Svid([cert], bundle, { agentContextOid: CUSTOM, cache }).context);
      expectMismatch(() => verifyX509Svid([cert], bundle, { cache }), DEFAULT_AGENT_CONTEXT_OID, CUSTOM);
      const other = issue();
      assert.ok(verifyX509Svid([other], bundle, { cache }).context);
      expectMismatch(
        () => verifyX509Svid([other], bundle, { agentContextOid: CUSTOM, cache }),
        CUSTOM,
        DEFAULT_AGENT_CONTEXT_OID,
      );
      // verifyAgentContext, used on its own, applies the same rule.
      expectMismatch(
        () =>
          verifyAgentContext(other, verifyX509Svid([other], bundle, { cache }).id, {
            agentContextOid: CUSTOM,
          }),
        CUSTOM,
        DEFAULT_AGENT_CONTEXT_OID,
      );
    });

    it('a leaf with contexts under two OIDs gives each verifier its own, also through a shared cache', () => {
      const other = baseContext({ agentId: 'other', sessionId: 'session-2', scopes: [] });
      const cert = issueSvidWithRawContextOid({
        spiffeId: ID,
        publicKey: key.publicKey,
        issuer: ca,
        contextOid: DEFAULT_AGENT_CONTEXT_OID,
        contextDer: encodeAgentContext(context),
        more: [{ oid: CUSTOM, value: encodeAgentContext(other) }],
      });
      const cache = new VerificationCache();
      assert.equal(verifyX509Svid([cert], bundle, { cache }).context?.sessionId, 'session-1');
      assert.equal(
        verifyX509Svid([cert], bundle, { agentContextOid: CUSTOM, cache }).context?.sessionId,
        'session-2',
      );
      assert.equal(verifyX509Svid([cert], bundle, { cache }).context?.sessionId, 'session-1');
    });

    it('a plain SVID, or one with an unrelated private extension, is still an SVID without context', () => {
      const plain = issueX509Svid({
        spiffeId: ID,
        publicKey: key.publicKey,
        issuer: asIssuer(ca),
        ttlSeconds: 600,
      }).cert;
      assert.equal(
        verifyX509Svid([plain], bundle, { agentContextOid: CUSTOM, cache: null }).context,
        undefined,
      );
      const unrelated = issueSvidWithRawContextOid({
        spiffeId: ID,
        publicKey: key.publicKey,
        issuer: ca,
        contextOid: '1.3.6.1.4.1.11129.2.4.2',
        contextDer: Uint8Array.of(0x04, 0x02, 0x00, 0x00),
      });
      assert.equal(verifyX509Svid([unrelated], bundle, { cache: null }).context, undefined);
    });

    it('the workload side refuses its own SVID and a grant from it when the OIDs differ', () => {
      const cert = issue(CUSTOM);
      expectMismatch(() => toX509Svid([cert], key.privateKey), DEFAULT_AGENT_CONTEXT_OID, CUSTOM);
      assert.equal(
        toX509Svid([cert], key.privateKey, { agentContextOid: CUSTOM }).context?.sessionId,
        'session-1',
      );
      const params = {
        parentCert: cert,
        parentKey: key.privateKey,
        childId: `spiffe://${TD}/agent/tool`,
        childKey: generateSigningKeyPair('ec-p256').publicKey,
        scopes: ['docs:read'],
      };
      expectMismatch(() => signGrant(params), DEFAULT_AGENT_CONTEXT_OID, CUSTOM);
      assert.equal(signGrant({ ...params, agentContextOid: CUSTOM }).binding.rootSessionId, 'session-1');
    });
  });
});
