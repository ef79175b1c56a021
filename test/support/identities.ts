/**
 * Client identities that a server must refuse, for the tests of caller authentication: an SVID of another
 * CA, an expired SVID of the server's own CA, and an SVID of the server's CA without an agent context.
 */
import { createPublicKey } from 'node:crypto';
import { createCa, issueSvid } from './pki';
import * as assert from 'node:assert/strict';
import type { TestServer } from './test-server';
import { newKey, type ClientIdentity } from './public-client';

/** A root CA of `trustDomain` that is not this server's, and an SVID it signed for `spiffeId`. */
export function foreignSvid(trustDomain: string, spiffeId: string): ClientIdentity {
  const svid = issueSvid(createCa(trustDomain, { ttlSeconds: 3600 }), spiffeId, { ttlSeconds: 600 });
  return { key: svid.key.privateKey, chain: [svid.cert.der] };
}

/** An SVID of the server's own CA that expired a minute ago. */
export async function expiredSvid(s: TestServer, spiffeId: string): Promise<ClientIdentity> {
  const k = newKey();
  const expired = await s.running.ca.signX509Svid({
    spiffeId,
    publicKey: createPublicKey(k.key),
    ttlSeconds: 1,
    now: new Date(Date.now() - 60_000),
  });
  assert.ok(expired.leaf.notAfter.getTime() < Date.now());
  return { key: k.key, chain: expired.chain };
}

/** A valid SVID of the server's own CA with no agent context: it names no registration entry. */
export async function contextlessSvid(s: TestServer, spiffeId: string): Promise<ClientIdentity> {
  const k = newKey();
  const svid = await s.running.ca.signX509Svid({
    spiffeId,
    publicKey: createPublicKey(k.key),
    ttlSeconds: 600,
  });
  return { key: k.key, chain: svid.chain };
}
