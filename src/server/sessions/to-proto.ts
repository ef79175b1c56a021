import type { Revocation } from '../../gen/lanyard/v1/session';
import type { RevocationRecord } from '../../store/types';

export function revocationToProto(r: RevocationRecord): Revocation {
  return {
    sequence: r.sequence,
    kind: r.kind,
    id: r.id,
    reason: r.reason,
    revokedAt: r.revokedAt,
    expiresAt: r.expiresAt,
    causeSequence: r.causeSequence ?? 0,
  };
}
