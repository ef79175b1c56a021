/** SessionService on the public listener: every call authenticates its caller by mTLS. */
import { SessionServiceService, type SessionServiceServer } from '../../gen/lanyard/v1/session';
import { unaryHandler } from '../../internal/grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import { createGrant } from './create-grant';
import type { SessionDeps } from './deps';
import { endSession, revokeSvid } from './end-session';
import { redeemGrant } from './redeem-grant';
import { resolveCaller } from '../auth/resolve-caller';
import { startSession } from './start-session';
import { getSessionAs, listSessionsAs } from './list-sessions';

export const SESSION_SERVICE_NAME = 'lanyard.v1.SessionService';

export function createSessionService(deps: SessionDeps): ServiceRegistration {
  const log = deps.logger.child({ service: SESSION_SERVICE_NAME });
  const d = { ...deps, logger: log };
  const implementation: SessionServiceServer = {
    startSession: unaryHandler('StartSession', log, (req, call) => startSession(d, req, call)),
    createGrant: unaryHandler('CreateGrant', log, (req, call) => createGrant(d, req, call)),
    redeemGrant: unaryHandler('RedeemGrant', log, (req, call) => redeemGrant(d, req, call)),
    endSession: unaryHandler('EndSession', log, (req, call) => endSession(d, req, call)),
    revokeSvid: unaryHandler('RevokeSvid', log, (req, call) => revokeSvid(d, req, call)),
    getSession: unaryHandler('GetSession', log, async (req, call) => {
      await resolveCaller(d, call, 'admin', d.clock());
      return getSessionAs(d, req);
    }),
    listSessions: unaryHandler('ListSessions', log, async (req, call) => {
      await resolveCaller(d, call, 'admin', d.clock());
      return listSessionsAs(d, req);
    }),
    // Verifiers watch with their own SVID: the feed is not secret, but every open watch costs the server
    // memory and work, so each is tied to an identity its limit counts (and to a connection).
    watchRevocations: deps.watchers.handler({
      authenticate: async (call) => (await resolveCaller(d, call, 'workload-or-session', d.clock())).id,
      perConnection: deps.limits.watchersPerConnection,
      perIdentity: deps.limits.watchersPerIdentity,
    }),
  };
  return {
    name: SESSION_SERVICE_NAME,
    definition: SessionServiceService,
    implementation,
    // Watches never end on their own: end them so a graceful close does not wait for the grace period.
    onClosing: () => deps.watchers.closeAll(),
  };
}
