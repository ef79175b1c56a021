/**
 * A loopback port nobody listens on right now, for a listener whose URL must be known before it binds (an
 * OIDC issuer names its port). Another process could take it in between; on loopback in a test run that is
 * rare enough, and the bind then fails loudly rather than silently.
 */
import * as net from 'node:net';

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
