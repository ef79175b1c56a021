/**
 * AgentSessionService (lanyard/v1/agent_session.proto) on the Workload API socket: a local workload starts a
 * task session through the agent.
 *
 * Trust model: the agent does not vouch for anything new. It picks, among the identities the caller's unix
 * attestation entitles it to, the one asked for, and calls the server's SessionService.StartSession over
 * mTLS *as that workload*, with the X.509-SVID the server issued for that entry to this agent (the entry is
 * under this agent, so the server already trusts the agent to hold it). The server then applies its own rules
 * to the request as for any direct caller. The session key is the workload's own: only its CSR passes through.
 */
import * as grpc from '@grpc/grpc-js';
import { LANYARD_CHANNEL_OPTIONS, lanyardChannelCredentials } from '../../client/server-credentials';
import {
  AgentNotReadyError,
  EntryAmbiguousError,
  InvalidArgumentError,
  NotEntitledError,
} from '../../errors';
import {
  AgentSessionServiceService,
  type AgentSessionServiceServer,
  type AgentSessionServiceStartSessionRequest,
  type AgentSessionServiceStartSessionResponse,
} from '../../gen/lanyard/v1/agent_session';
import { SessionServiceClient, type StartSessionResponse } from '../../gen/lanyard/v1/session';
import type { ServerEndpoints } from '../../client/server-endpoints';
import type { Logger } from '../../internal/logging';
import type { AgentCache } from '../cache';
import type { ServiceSpec } from './endpoint';
import { ForwardedStatus } from './forwarded-status';
import { selectorsOf, unary, type PeerOf } from './service';

const CALL_DEADLINE_MS = 15_000;

export interface AgentSessionDeps {
  cache: AgentCache;
  /** The servers: StartSession goes to the current one, and to the next when it is unavailable. */
  servers: ServerEndpoints;
  clock: () => Date;
  logger: Logger;
}

export function agentSessionService(deps: AgentSessionDeps, peerOf: PeerOf): ServiceSpec {
  const log = deps.logger.child({ service: 'lanyard.v1.AgentSessionService' });
  const implementation: AgentSessionServiceServer = {
    startSession: (call, callback) =>
      unary(log, peerOf, call, callback, 'StartSession', async () =>
        startSession(deps, await selectorsOf(peerOf, call), call.request),
      ),
  };
  return {
    definition: AgentSessionServiceService,
    implementation: implementation as unknown as grpc.UntypedServiceImplementation,
  };
}

async function startSession(
  deps: AgentSessionDeps,
  selectors: Awaited<ReturnType<typeof selectorsOf>>,
  req: AgentSessionServiceStartSessionRequest,
): Promise<AgentSessionServiceStartSessionResponse> {
  if (req.session === undefined) throw new InvalidArgumentError('session is required');
  const bundle = deps.cache.bundle();
  if (bundle === undefined) {
    throw new AgentNotReadyError('the agent has not reached its server yet: retry');
  }
  const entitled = deps.cache.entitled(selectors, deps.clock());
  const chosen = req.spiffeId === '' ? entitled : entitled.filter((e) => e.entry.spiffeId === req.spiffeId);
  if (chosen.length === 0) {
    throw new NotEntitledError(
      req.spiffeId === ''
        ? 'no identity is registered for this workload on this agent'
        : `this workload is not entitled to ${req.spiffeId} on this agent`,
    );
  }
  if (chosen.length > 1) {
    throw new EntryAmbiguousError(
      `this workload has several identities; choose one with spiffe_id: ${chosen.map((e) => e.entry.spiffeId).join(', ')}`,
    );
  }
  const { svid } = chosen[0]!;
  const credentials = lanyardChannelCredentials(bundle, svid);
  try {
    const session = await deps.servers.call(async (server) => {
      const client = new SessionServiceClient(server, credentials, LANYARD_CHANNEL_OPTIONS);
      try {
        return await new Promise<StartSessionResponse>((resolve, reject) =>
          client.startSession(
            req.session!,
            new grpc.Metadata(),
            { deadline: Date.now() + CALL_DEADLINE_MS },
            (err, res) => (err ? reject(err) : resolve(res)),
          ),
        );
      } finally {
        client.close();
      }
    });
    return { session };
  } catch (e) {
    throw forwarded(e);
  }
}

/** The server's refusal, passed on with its status and stable code (or UNAVAILABLE when it was not reached). */
function forwarded(e: unknown): Error {
  const se = e as Partial<grpc.ServiceError>;
  if (typeof se.code === 'number' && se.code !== grpc.status.UNAVAILABLE) {
    const code = se.metadata?.get('lanyard-error-code')[0];
    return new ForwardedStatus(
      se.code,
      se.details ?? 'refused by the server',
      typeof code === 'string' ? code : undefined,
    );
  }
  return new AgentNotReadyError(
    `the server could not be reached to start the session: ${se.details ?? String(e)}`,
  );
}
