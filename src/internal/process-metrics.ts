/**
 * Node's process metrics (CPU, memory, heap, event loop lag, GC, handles, file descriptors) from prom-client,
 * in a given registry. Three of prom-client's gauges end in `_total`, which Prometheus reserves for counters
 * (`promtool check metrics` refuses them); their per-type twins (nodejs_active_handles{type}, ...) carry the same
 * numbers, so the `_total` ones are left out.
 */
import { collectDefaultMetrics, type Registry } from 'prom-client';

const MISNAMED_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_GAUGES) registry.removeSingleMetric(name);
}
