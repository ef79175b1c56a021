/** What every session call needs; built once per listener in services.ts. */
import type { X509Bundle } from '../../bundle/x509-bundle';
import type { CaManager } from '../../ca';
import type { IssuancePolicySource } from '../../policy';
import type { Store } from '../../store/store';
import type { Logger } from '../../internal/logging';
import type { PrincipalVerifier } from './principal';
import type { SessionLimits } from './quota';
import type { RevocationFeed } from './revocation-feed';
import type { RevocationWatchers } from './watch-revocations';

export interface SessionDeps {
  store: Store;
  ca: CaManager;
  clock: () => Date;
  logger: Logger;
  /** SVID lifetime for entries that set none (the server's svid.default_ttl). */
  defaultTtlSeconds: number;
  /** Bounds the life of any SVID this server signed: how long a revocation of an unknown serial is kept. */
  caTtlSeconds: number;
  principals: PrincipalVerifier;
  revocations: RevocationFeed;
  /** Per-agent session limits (config `limits.*`). */
  limits: SessionLimits & { watchersPerConnection: number; watchersPerIdentity: number };
  /** The server's open WatchRevocations streams (shared by both listeners). */
  watchers: RevocationWatchers;
  /** Issuance policy (policy.files): narrows session and delegated scopes; absent = none. */
  policy?: IssuancePolicySource;
  /** Federated trust domains' bundles: what a foreign grant's parent is verified with. Absent: none. */
  federation?: { bundle(trustDomain: string): X509Bundle | undefined };
}
