/**
 * fast-check run counts. `npm test` (and CI) sets LANYARD_FULL_RUNS=1 and gets each property's full count;
 * `npm run test:unit`, the developer's quick loop, runs a tenth of it (at least 20) so the unit part stays
 * under a minute. The properties and their generators are the same either way: only the sample shrinks.
 */
export function propertyRuns(full: number): number {
  if (process.env.LANYARD_FULL_RUNS === '1') return full;
  return Math.max(20, Math.ceil(full / 10));
}
