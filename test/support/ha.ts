/**
 * Several Lanyard servers on one PostgreSQL database (docs/operator/ha.md), in this process: each with its own
 * data dir (CA keys, audit key, admin socket) and listener, all on the same database.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ServerConfig } from '../../src/server/config';
import { X509Bundle } from '../../src/bundle';
import { TrustDomain } from '../../src/spiffe';
import { ParsedCertificate } from '../../src/x509/certificate';
import type { PostgresCluster } from './postgres-cluster';
import { startTestServer, tempDataDir, type TestServer } from './test-server';

/** One more server on `database`; its data dir is removed when the run ends (./tmp). */
export async function startSharedServer(
  cluster: PostgresCluster,
  database: string,
  config: Partial<ServerConfig> = {},
): Promise<TestServer> {
  const dir = tempDataDir();
  const passwordFile = path.join(dir, 'pg-password');
  fs.writeFileSync(passwordFile, `${cluster.password}\n`, { mode: 0o600 });
  return startTestServer({
    dir,
    config: { postgres: { url: cluster.url(database), poolSize: 5, passwordFile }, ...config },
  });
}

/** The SHA-256 of every root in the server's current bundle. */
export function rootsOf(s: TestServer): Set<string> {
  return new Set(s.running.ca.bundle().x509Authorities.map((c) => c.sha256Hex));
}

/** A bundle holding the roots of every server given (servers of different databases, for negative tests). */
export function unionBundle(servers: readonly TestServer[], trustDomain = 'lanyard.local'): X509Bundle {
  const ders = new Map<string, Uint8Array>();
  for (const s of servers) {
    for (const c of s.running.ca.bundle().x509Authorities) ders.set(c.sha256Hex, c.der);
  }
  return X509Bundle.fromDer(TrustDomain.parse(trustDomain), [...ders.values()]);
}

/** The root of the server's own active CA: the one its server SVID chains to. */
export function activeRootOf(s: TestServer): ParsedCertificate {
  const chain = s.running.ca.serverSvid().chain;
  const root = s.running.ca
    .bundle()
    .x509Authorities.find((r) => chain.some((c) => c.sha256Hex === r.sha256Hex || c.isSignedBy(r)));
  if (root === undefined) throw new Error('no root of the bundle signs the server SVID');
  return root;
}
