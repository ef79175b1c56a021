/** Policy files in a temp dir, and real verified SVIDs (a delegated session) to decide about. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { verifyX509Svid, type VerifyX509SvidResult } from '../../src/verify';
import { tempDir } from '../support/tmp';
import { createPki, delegatedPair, type TrustDomainPki } from '../support/pki';

export function tempPolicyDir(files: Record<string, string> = {}): string {
  const dir = tempDir('policy');
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

/** alice's planner session (docs:read, tools:run) delegated tools:run to the tool-runner; both verified. */
export function verifiedPeers(pki: TrustDomainPki = createPki('example.org')): {
  planner: VerifyX509SvidResult;
  toolRunner: VerifyX509SvidResult;
} {
  const pair = delegatedPair(
    pki,
    { name: 'planner', scopes: ['docs:read', 'tools:run'], ttlSeconds: 600 },
    { name: 'tool-runner', scopes: ['tools:run'], ttlSeconds: 300 },
  );
  return {
    planner: verifyX509Svid(pair.parent.chain, pki.bundle, { cache: null }),
    toolRunner: verifyX509Svid(pair.child.chain, pki.bundle, { cache: null }),
  };
}

/** Replaces a file in one step, as editors and Kubernetes ConfigMaps do: readers never see it half-written. */
export function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}
