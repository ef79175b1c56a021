import type { Command } from 'commander';
import { registerAgentCommands } from './agent';
import { registerAuditCommands } from './audit';
import { registerBundleCommands } from './bundle';
import { registerCaCommands } from './ca';
import { registerEntryCommands } from './entry';
import { registerFederationCommands } from './federation';
import { registerGrantCommands } from './grant';
import { registerPolicyCommands } from './policy';
import { registerServerCommands } from './server';
import { registerSessionCommands } from './session';
import { registerSvidCommands } from './svid';
import { registerTokenCommands } from './token';

/** Every command group registers itself here; one module per group keeps main.ts stable. */
export function registerCommands(program: Command): void {
  registerCaCommands(program);
  registerSvidCommands(program);
  registerServerCommands(program);
  registerEntryCommands(program);
  registerFederationCommands(program);
  registerTokenCommands(program);
  registerBundleCommands(program);
  registerSessionCommands(program);
  registerGrantCommands(program);
  registerAgentCommands(program);
  registerAuditCommands(program);
  registerPolicyCommands(program);
}
