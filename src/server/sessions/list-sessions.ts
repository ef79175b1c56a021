/**
 * GetSession and ListSessions: what an operator reads about task sessions (`lanyard session show|list`). Admin
 * only: a session names its principal and intent, which other agents have no business reading.
 */
import { InvalidArgumentError } from '../../errors';
import type {
  GetSessionRequest,
  GetSessionResponse,
  ListSessionsRequest,
  ListSessionsResponse,
  Session,
} from '../../gen/lanyard/v1/session';
import type { SessionRecord } from '../../store/types';
import type { SessionDeps } from './deps';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

export async function getSessionAs(deps: SessionDeps, req: GetSessionRequest): Promise<GetSessionResponse> {
  if (req.sessionId === '') throw new InvalidArgumentError('session_id is required');
  return { session: sessionToProto(await deps.store.getSession(req.sessionId)) };
}

export async function listSessionsAs(
  deps: SessionDeps,
  req: ListSessionsRequest,
): Promise<ListSessionsResponse> {
  if (!Number.isInteger(req.limit) || req.limit < 0 || req.limit > MAX_LIMIT) {
    throw new InvalidArgumentError(
      `limit must be between 0 (the default, ${DEFAULT_LIMIT}) and ${MAX_LIMIT}`,
    );
  }
  const sessions = await deps.store.listSessions({
    ...(req.spiffeId !== '' ? { spiffeId: req.spiffeId } : {}),
    ...(req.rootSessionId !== '' ? { rootSessionId: req.rootSessionId } : {}),
    ...(req.liveOnly ? { liveAt: deps.clock() } : {}),
    limit: req.limit === 0 ? DEFAULT_LIMIT : req.limit,
  });
  return { sessions: sessions.map(sessionToProto) };
}

function sessionToProto(s: SessionRecord): Session {
  return {
    id: s.id,
    spiffeId: s.spiffeId,
    entryId: s.entryId,
    rootSessionId: s.rootSessionId,
    parentSessionId: s.parentSessionId ?? '',
    principalId: s.principal.id,
    principalIssuer: s.principal.issuer,
    principalProvenance: s.principal.provenance,
    intent: s.intent,
    scopes: [...s.scopes],
    depth: s.depth,
    depthLimit: s.depthLimit,
    createdAt: s.createdAt,
    expiresAt: s.expiresAt,
    endedAt: s.endedAt,
    endReason: s.endReason ?? '',
    certSerials: [...s.certSerials],
  };
}
