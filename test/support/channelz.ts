/**
 * grpc-js's in-process channelz registry, read as the channelz service would answer: what tests check to show that
 * a listener or a channel keeps no channelz data (`grpc.enable_channelz: 0`), and a bare listener to call through.
 */
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../../src/internal/logging';
import { LanyardServer } from '../../src/server/grpc-server';

interface ChannelzServer {
  listen_socket: { name: string }[];
  data: { calls_started: string | number };
}

interface ChannelzChannel {
  data: { target: string; calls_started: string | number };
}

function ask<T>(
  method: 'GetServers' | 'GetTopChannels',
  request: object,
  pick: (res: never) => T,
): Promise<T> {
  const handlers = grpc.getChannelzHandlers();
  const handler = handlers[method] as unknown as (
    call: { request: object },
    cb: (err: Error | null, res: never) => void,
  ) => void;
  return new Promise((resolve, reject) =>
    handler({ request }, (err, res) => (err ? reject(err) : resolve(pick(res)))),
  );
}

/** Every server in the registry (GetServers). */
export function channelzServers(): Promise<ChannelzServer[]> {
  return ask(
    'GetServers',
    { start_server_id: '0', max_results: '1000' },
    (res: { server: ChannelzServer[] }) => res.server,
  );
}

/** Every top-level channel in the registry (GetTopChannels): one per client channel made with channelz on. */
export function channelzChannels(): Promise<ChannelzChannel[]> {
  return ask(
    'GetTopChannels',
    { start_channel_id: '0', max_results: '1000' },
    (res: { channel: ChannelzChannel[] }) => res.channel,
  );
}

/** A LanyardServer with one plaintext listener on loopback and no services but health: what a call goes through. */
export async function startBareListener(): Promise<{ server: LanyardServer; address: string; port: number }> {
  const server = new LanyardServer({
    listeners: [
      {
        name: 'test',
        address: '127.0.0.1:0',
        credentials: grpc.ServerCredentials.createInsecure(),
        services: [],
      },
    ],
    logger: createLogger({ level: 'silent' }),
    maxMessageBytes: 1024 * 1024,
    shutdownGraceMs: 1000,
  });
  const [bound] = await server.start();
  return { server, address: bound!.address, port: bound!.port };
}
