/** Binding the server's plain HTTP(S) side listeners (the SPIFFE bundle endpoint, the CRL distribution point). */
import type { AddressInfo, Server } from 'node:net';
import { formatHostPort } from './config';

export interface BoundListener {
  /** What the socket actually bound (port 0 becomes the chosen port; a host name becomes its address). */
  bound: AddressInfo;
  /** `bound` as host:port, IPv6 bracketed: what the caller logs and hands out. */
  address: string;
}

/** Listens on `listen`; a bind failure (port taken, address not local) rejects instead of being thrown later. */
export async function listenOn(
  server: Server,
  listen: { host: string; port: number },
): Promise<BoundListener> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return { bound, address: formatHostPort({ host: bound.address, port: bound.port }) };
}
