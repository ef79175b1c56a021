/**
 * grpc.health.v1 on the agent's Workload API socket, for probes (`lanyard agent healthcheck`, a container's
 * exec probe, grpc_health_probe). As SPIRE's agent judges itself: it is healthy once it can answer the
 * Workload API, that is once it has reached its server and holds the trust bundle; before that, '' and
 * SpiffeWorkloadAPI report NOT_SERVING. Cached SVIDs keep being served when the server is unreachable later,
 * so health stays SERVING then, as SPIRE's does.
 */
import type * as grpc from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { AgentCache } from '../cache';
import type { ServiceSpec } from './endpoint';

/** The Workload API's gRPC service name (the SPIFFE proto declares no package). */
export const WORKLOAD_API_SERVICE_NAME = 'SpiffeWorkloadAPI';
const NAMES = ['', WORKLOAD_API_SERVICE_NAME];

export interface AgentHealth {
  spec: ServiceSpec;
  /** Everything NOT_SERVING from now on (the agent is closing), and no more updates. */
  stop(): void;
}

export function agentHealth(cache: AgentCache): AgentHealth {
  const statusNow = (): ServingStatus => (cache.bundle() !== undefined ? 'SERVING' : 'NOT_SERVING');
  const health = new HealthImplementation(Object.fromEntries(NAMES.map((n) => [n, statusNow()])));
  const update = (): void => {
    for (const n of NAMES) health.setStatus(n, statusNow());
  };
  cache.on('update', update);
  let spec: ServiceSpec | undefined;
  health.addToServer({
    addService(definition, implementation) {
      spec = {
        definition: definition as grpc.ServiceDefinition,
        implementation: implementation as grpc.UntypedServiceImplementation,
      };
    },
  });
  return {
    spec: spec!,
    stop() {
      cache.off('update', update);
      for (const n of NAMES) health.setStatus(n, 'NOT_SERVING');
    },
  };
}
