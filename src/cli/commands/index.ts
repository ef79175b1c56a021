import type { Command } from 'commander';
import { registerCaCommands } from './ca';
import { registerSvidCommands } from './svid';

/** Every command group registers itself here; one module per group keeps main.ts stable. */
export function registerCommands(program: Command): void {
  registerCaCommands(program);
  registerSvidCommands(program);
}
