/**
 * The gRPC server shell: several listeners (each its own grpc-js Server, because which services a caller
 * may reach depends on how it connected), each with health checking and reflection, and a lifecycle of
 * start -> serving -> close (stop accepting, drain in-flight calls up to a grace period, run close hooks).
 */
import * as grpc from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from '../internal/logging';
import { answerWhenDurable } from './durable-answers';
import { answerMalformedRequests } from './malformed-request';
import { reflectedServiceNames, reflectionPackageDefinition } from './proto-descriptors';

/** One gRPC service ready to be added to a listener. */
export interface ServiceRegistration {
  /** Fully qualified, e.g. "lanyard.v1.RegistrationService": the health and reflection name. */
  name: string;
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Called when close starts: end long-lived streams here so draining does not wait for the grace period. */
  onClosing?: () => void;
}

export interface ListenerSpec {
  /** For logs: "admin", "public". */
  name: string;
  /** grpc-js bind target: "unix:///abs/path" or "host:port". */
  address: string;
  credentials: grpc.ServerCredentials;
  services: ServiceRegistration[];
  /** Binds; defaults to a plain bindAsync. The admin socket wraps it to create the socket privately. */
  bind?: (doBind: () => Promise<number>) => Promise<number>;
  beforeBind?: () => Promise<void>;
  afterClose?: () => void;
}

export interface BoundListener {
  name: string;
  /** The address as bound; for "host:0" the port the OS picked. */
  address: string;
  port: number;
}

export interface LanyardServerOptions {
  listeners: ListenerSpec[];
  logger: Logger;
  maxMessageBytes: number;
  /** After this long, close cancels calls still running. */
  shutdownGraceMs: number;
  /** Runs once after every listener closed, e.g. closing the store. */
  onClosed?: () => Promise<void>;
  /**
   * Wraps each service of each listener outermost (after the malformed-request answer, so refused undecodable
   * requests are seen too): the metrics' per-method measurement.
   */
  instrument?: (service: ServiceRegistration, listener: string) => ServiceRegistration;
}

export type ServerState = 'new' | 'starting' | 'serving' | 'closing' | 'closed';

interface RunningListener {
  spec: ListenerSpec;
  server: grpc.Server;
  health: HealthImplementation;
  /** Open health Watch streams: ended on close, or they would hold the drain until the grace period. */
  healthWatches: Set<grpc.ServerWritableStream<unknown, unknown>>;
}

export class LanyardServer {
  private state_: ServerState = 'new';
  private readonly running: RunningListener[] = [];
  private closePromise: Promise<void> | undefined;

  constructor(private readonly options: LanyardServerOptions) {}

  get state(): ServerState {
    return this.state_;
  }

  /** Binds every listener; when one fails, the ones already bound are closed again and the error thrown. */
  async start(): Promise<BoundListener[]> {
    if (this.state_ !== 'new') throw new Error(`cannot start a server that is ${this.state_}`);
    this.state_ = 'starting';
    const bound: BoundListener[] = [];
    try {
      for (const spec of this.options.listeners) bound.push(await this.startListener(spec));
    } catch (e) {
      await this.close();
      throw e;
    }
    this.state_ = 'serving';
    return bound;
  }

  /**
   * Graceful close: health turns NOT_SERVING, listeners stop accepting, running calls finish (or are
   * cancelled after the grace period), then onClosed runs. Safe to call more than once.
   */
  close(): Promise<void> {
    this.closePromise ??= this.doClose();
    return this.closePromise;
  }

  /**
   * Sets the health status of `names` ('' is the server as a whole) on every listener that reports them.
   * Ignored unless serving: once close has begun, everything stays NOT_SERVING.
   */
  setHealth(names: readonly string[], status: 'SERVING' | 'NOT_SERVING'): void {
    if (this.state_ !== 'serving') return;
    for (const l of this.running) {
      const reported = new Set(['', ...l.spec.services.map((s) => s.name)]);
      for (const n of names) if (reported.has(n)) l.health.setStatus(n, status);
    }
  }

  private async startListener(spec: ListenerSpec): Promise<BoundListener> {
    const { logger, maxMessageBytes } = this.options;
    const server = new grpc.Server({
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
      // grpc-js keeps channelz data (call counters, timestamps, a socket entry per connection) unless told not
      // to, and nothing here serves the channelz service that would read it: work on every call and memory
      // per connection for data no one can see (0.1-0.2 % of the server thread's time in a Renew profile).
      'grpc.enable_channelz': 0,
    });
    const names = spec.services.map((s) => s.name);
    const health = new HealthImplementation(
      Object.fromEntries(['', ...names].map((n) => [n, 'SERVING' as const])),
    );
    for (const s of spec.services) {
      // Outside every other wrapper but the metrics: the scope must hold every store read of the call.
      const answering = answerWhenDurable(answerMalformedRequests(s, logger), logger);
      const wrapped = this.options.instrument?.(answering, spec.name) ?? answering;
      server.addService(wrapped.definition, wrapped.implementation);
    }
    const healthWatches = new Set<grpc.ServerWritableStream<unknown, unknown>>();
    addHealthService(server, health, healthWatches);
    new ReflectionService(reflectionPackageDefinition(), {
      services: reflectedServiceNames(names),
    }).addToServer(server);

    await spec.beforeBind?.();
    const doBind = (): Promise<number> =>
      new Promise((resolve, reject) => {
        server.bindAsync(spec.address, spec.credentials, (err, port) => (err ? reject(err) : resolve(port)));
      });
    const port = await (spec.bind ? spec.bind(doBind) : doBind());
    this.running.push({ spec, server, health, healthWatches });
    const address = spec.address.startsWith('unix:') ? spec.address : spec.address.replace(/:0$/, `:${port}`);
    logger.info({ listener: spec.name, address, services: names }, 'listening');
    return { name: spec.name, address, port };
  }

  private async doClose(): Promise<void> {
    const { logger, shutdownGraceMs, onClosed } = this.options;
    this.state_ = 'closing';
    logger.info({ graceMs: shutdownGraceMs }, 'shutting down: draining in-flight calls');
    for (const l of this.running) {
      // Watchers see NOT_SERVING first (so load balancers move away), then their stream ends.
      for (const n of ['', ...l.spec.services.map((s) => s.name)]) l.health.setStatus(n, 'NOT_SERVING');
      for (const w of l.healthWatches) w.end();
      for (const s of l.spec.services) s.onClosing?.();
    }
    await Promise.all(this.running.map((l) => this.drain(l)));
    for (const l of this.running) l.spec.afterClose?.();
    try {
      await onClosed?.();
    } finally {
      this.state_ = 'closed';
      logger.info('shut down');
    }
  }

  private drain(l: RunningListener): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.options.logger.warn(
          { listener: l.spec.name },
          'grace period over: cancelling calls still running',
        );
        l.server.forceShutdown();
        finish();
      }, this.options.shutdownGraceMs);
      l.server.tryShutdown(finish);
    });
  }
}

/**
 * Adds grpc.health.v1.Health from grpc-health-check, wrapping its Watch handler to keep track of open
 * streams (the library does not expose them).
 */
function addHealthService(
  server: grpc.Server,
  health: HealthImplementation,
  watches: Set<grpc.ServerWritableStream<unknown, unknown>>,
): void {
  health.addToServer({
    addService(definition, implementation) {
      const watch = implementation.watch as grpc.handleServerStreamingCall<unknown, unknown> | undefined;
      const wrapped: grpc.UntypedServiceImplementation = { ...implementation };
      if (watch) {
        wrapped.watch = (call: grpc.ServerWritableStream<unknown, unknown>) => {
          watches.add(call);
          const forget = (): void => {
            watches.delete(call);
          };
          call.on('cancelled', forget);
          call.on('finish', forget);
          watch(call);
        };
      }
      server.addService(definition as grpc.ServiceDefinition, wrapped);
    },
  });
}
