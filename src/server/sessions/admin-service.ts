/**
 * SessionService on the local admin socket, for `lanyard session end|show|list` and `lanyard svid revoke`. Whoever can
 * open the socket is an admin (it is 0600 in a 0700 data dir), so EndSession and RevokeSvid need no SVID
 * here, nor do GetSession, ListSessions and WatchRevocations. The calls that act as an agent (StartSession,
 * CreateGrant, RedeemGrant) need the agent's own mTLS identity and are refused: the socket has none.
 */
import * as grpc from '@grpc/grpc-js';
import { SessionServiceService, type SessionServiceServer } from '../../gen/lanyard/v1/session';
import { unaryHandler } from '../../internal/grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import type { SessionDeps } from './deps';
import { endSessionAs, revokeSvidAs } from './end-session';
import { getSessionAs, listSessionsAs } from './list-sessions';
import { SESSION_SERVICE_NAME } from './service';

/** How the admin socket appears in end reasons and logs. */
export const ADMIN_SOCKET_ACTOR = 'the admin socket';

export function createSessionAdminService(deps: SessionDeps): ServiceRegistration {
  const log = deps.logger.child({ service: SESSION_SERVICE_NAME, listener: 'admin' });
  const d = { ...deps, logger: log };
  const agentOnly = (
    _call: grpc.ServerUnaryCall<unknown, unknown>,
    callback: grpc.sendUnaryData<never>,
  ): void =>
    callback({
      code: grpc.status.UNIMPLEMENTED,
      details: 'an agent call: use the public listener with the agent SVID',
    });
  const implementation: SessionServiceServer = {
    startSession: agentOnly,
    createGrant: agentOnly,
    redeemGrant: agentOnly,
    endSession: unaryHandler('EndSession', log, (req) => endSessionAs(d, req, ADMIN_SOCKET_ACTOR)),
    revokeSvid: unaryHandler('RevokeSvid', log, (req) => revokeSvidAs(d, req, ADMIN_SOCKET_ACTOR)),
    getSession: unaryHandler('GetSession', log, (req) => getSessionAs(d, req)),
    listSessions: unaryHandler('ListSessions', log, (req) => listSessionsAs(d, req)),
    // Whoever opens the socket is trusted: no authentication, and only the server-wide watcher limit.
    watchRevocations: deps.watchers.handler(),
  };
  return {
    name: SESSION_SERVICE_NAME,
    definition: SessionServiceService,
    implementation,
    onClosing: () => deps.watchers.closeAll(),
  };
}
