/**
 * Two federated trust domains for the attribution tests: ours (example.org, with a real planner session of
 * alice's) and a partner's (partner.net), each with its own CA, and a verifier's BundleSet holding both. The
 * partner's CA is the attacker: it signs whatever agent context it likes, but holds none of our keys.
 */
import { BundleSet } from '../../src/bundle';
import type { AgentContext } from '../../src/x509/agent-context/types';
import { generateSigningKeyPair } from '../../src/x509/keys';
import {
  baseContext,
  createPki,
  delegate,
  delegatedPair,
  type DelegatedPair,
  issueSvid,
  seconds,
  type Svid,
  type TrustDomainPki,
} from './pki';

export const OURS = 'example.org';
export const PARTNER = 'partner.net';
export const PARTNER_BOT = `spiffe://${PARTNER}/bot`;

export interface Federation {
  ours: TrustDomainPki;
  partner: TrustDomainPki;
  /** What a verifier of either domain holds: both bundles. */
  bundles: BundleSet;
  /** Our planner's session for alice (verified principal) and a tool-runner it really delegated to. */
  real: DelegatedPair;
}

export function federation(): Federation {
  const ours = createPki(OURS);
  const partner = createPki(PARTNER);
  const real = delegatedPair(
    ours,
    { name: 'planner', scopes: ['docs:read', 'tools:run'], ttlSeconds: 3600 },
    { name: 'tool-runner', scopes: ['docs:read'], ttlSeconds: 1800 },
  );
  return { ours, partner, bundles: new BundleSet([ours.bundle, partner.bundle]), real };
}

/**
 * A context the partner's server could honestly issue to its bot: alice verified by an IdP (the partner's claim),
 * the partner's own issuing server, no delegation. `edit` then makes it claim something of ours.
 */
export function partnerContext(edit: (ctx: AgentContext) => void = () => {}): AgentContext {
  const ctx = baseContext({
    agentId: 'bot',
    sessionId: 'session-bot',
    scopes: ['docs:read'],
    provenance: {
      method: 'join_token',
      evidenceSha256: new Uint8Array(32).fill(9),
      issuer: `spiffe://${PARTNER}/lanyard/server`,
      issuedAt: seconds(Date.now() - 60_000),
    },
  });
  edit(ctx);
  return ctx;
}

/** The bot's SVID from the partner's CA, with `context`, for `key` (default a fresh one). */
export function partnerSvid(
  f: Federation,
  context: AgentContext | undefined,
  key = generateSigningKeyPair('ec-p256'),
): Svid {
  return issueSvid(f.partner, PARTNER_BOT, {
    key,
    ttlSeconds: 600,
    ...(context !== undefined ? { context } : {}),
  });
}

/**
 * The reported attack: the partner's CA mints its bot an SVID whose context claims our verified principal, our
 * planner's root session, and a link from our planner (naming the planner's real certificate) signed by a key
 * the partner invented. Every signature in it verifies; only the attribution gives it away.
 */
export function forgedDelegation(f: Federation): Svid {
  const planner = f.real.parent;
  const botKey = generateSigningKeyPair('ec-p256');
  const invented = generateSigningKeyPair('ec-p256');
  const link = delegate(
    { id: planner.id, key: invented, cert: planner.cert, context: planner.context },
    PARTNER_BOT,
    botKey.publicKey,
    ['docs:read'],
    new Date(Date.now() + 900_000),
  );
  const context = partnerContext((c) => {
    c.principal = { ...planner.context.principal };
    c.rootSessionId = planner.context.rootSessionId;
    c.delegation = [link];
  });
  return partnerSvid(f, context, botKey);
}
