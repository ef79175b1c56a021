import type { Command } from 'commander';

/** Every command group registers itself here; one module per group keeps main.ts stable. */
export function registerCommands(program: Command): void {
  void program;
}
