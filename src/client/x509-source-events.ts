import { EventEmitter } from 'node:events';
import type { X509SourceEvents } from './x509-source';

/** The typed `on`/`off` every X509Source offers, written once for the concrete sources to extend. */
export class X509SourceEmitter extends EventEmitter {
  override on<E extends keyof X509SourceEvents>(
    event: E,
    listener: (...args: X509SourceEvents[E]) => void,
  ): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }

  override off<E extends keyof X509SourceEvents>(
    event: E,
    listener: (...args: X509SourceEvents[E]) => void,
  ): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }
}
