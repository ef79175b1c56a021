/**
 * WatchRevocations: the stored state (all of it, or what follows the watcher's sequence), then every new
 * revocation as it commits. Subscribing happens before the read, so a revocation committed in between is
 * delivered (possibly twice; anything at or below the last sent sequence is dropped).
 */
import type * as grpc from '@grpc/grpc-js';
import type { WatchRevocationsRequest, WatchRevocationsResponse } from '../../gen/lanyard/v1/session';
import type { RevocationRecord } from '../../store/types';
import { toStatus } from '../grpc-call';
import type { SessionDeps } from './deps';
import { revocationToProto } from './to-proto';

export type RevocationWatch = grpc.ServerWritableStream<WatchRevocationsRequest, WatchRevocationsResponse>;

export function watchRevocations(
  deps: SessionDeps,
  call: RevocationWatch,
  watches: Set<RevocationWatch>,
): void {
  const after = Math.max(0, Number(call.request.afterSequence));
  let sent = after;
  let ready = false;
  const pending: RevocationRecord[] = [];
  const send = (records: readonly RevocationRecord[], fullState: boolean): void => {
    const fresh = records.filter((r) => r.sequence > sent);
    if (fresh.length === 0 && !fullState) return;
    sent = Math.max(sent, ...fresh.map((r) => r.sequence));
    call.write({ fullState, revocations: fresh.map(revocationToProto), sequence: sent });
  };
  const unsubscribe = deps.revocations.subscribe((records) => {
    if (ready) send(records, false);
    else pending.push(...records);
  });
  const forget = (): void => {
    unsubscribe();
    watches.delete(call);
  };
  call.on('cancelled', forget);
  call.on('close', forget);
  call.on('finish', forget);
  watches.add(call);

  void (async () => {
    try {
      const stored = await deps.store.listRevocations(after);
      send(stored, after === 0);
      ready = true;
      send(pending.splice(0), false);
    } catch (e) {
      forget();
      call.emit('error', toStatus(e));
    }
  })();
}
