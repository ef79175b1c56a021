/**
 * grpc-js writes its own diagnostics ("E 2026-… | No address added out of total 1 resolved") to stderr as
 * plain text, which breaks a log pipeline that expects one JSON object per line. Its logger is one
 * process-wide setting, so only the commands that own the process (`server run`, `agent run`) route it
 * into their pino logger; a library user's process keeps whatever logger it chose.
 */
import { setLogger } from '@grpc/grpc-js';
import { format } from 'node:util';
import type { Logger } from '../internal/logging';

export function routeGrpcLogs(logger: Logger): void {
  const grpcLogger = logger.child({ component: 'grpc-js' });
  const line = (args: unknown[]): string => format(...args);
  setLogger({
    error: (...args: unknown[]) => grpcLogger.error(line(args)),
    info: (...args: unknown[]) => grpcLogger.info(line(args)),
    debug: (...args: unknown[]) => grpcLogger.debug(line(args)),
  });
}
