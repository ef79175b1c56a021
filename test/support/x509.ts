import { spawnSync } from 'node:child_process';
import { KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKeyPair, KeyAlgorithm } from '../../src/x509/keys';

/** Shared by the x509 and ca tests: keys made once per type (RSA generation is slow), temp dirs, openssl. */

/** One key type per family that Lanyard accepts (rsa-3072/4096 behave as rsa-2048, only slower to make). */
export const KEY_ALGORITHMS = [
  'ec-p256',
  'ec-p384',
  'rsa-2048',
  'ed25519',
] as const satisfies readonly KeyAlgorithm[];
export type TestKeyAlgorithm = (typeof KEY_ALGORITHMS)[number];

const keyCache = new Map<string, { privateKey: KeyObject; publicKey: KeyObject }[]>();

/** The `index`-th key of type `alg`, generated on first use and reused afterwards. */
export function testKey(alg: KeyAlgorithm, index = 0): { privateKey: KeyObject; publicKey: KeyObject } {
  const keys = keyCache.get(alg) ?? [];
  keyCache.set(alg, keys);
  while (keys.length <= index) keys.push(generateSigningKeyPair(alg));
  return keys[index]!;
}

export interface OpensslResult {
  ok: boolean;
  output: string;
}

/** Runs the openssl CLI and returns its exit status with stdout and stderr together (it reports on both). */
export function openssl(args: string[], input?: string): OpensslResult {
  const r = spawnSync('openssl', args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  if (r.error) throw r.error;
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

export function writeTemp(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
