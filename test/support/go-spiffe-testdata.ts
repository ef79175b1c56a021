/**
 * go-spiffe's own test data (certificates, keys, bundles), read from the shared conformance folder beside the
 * checkout and never copied into this repository. Tests that use it skip when the folder is absent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..', '..', 'shared', 'conformance', 'go-spiffe');

/** The folder of go-spiffe's `<pkg>/testdata` (e.g. "svid/x509svid"), or undefined when it is not there. */
export function goSpiffeTestdata(pkg: string): string | undefined {
  const dir = path.join(ROOT, pkg, 'testdata');
  return fs.existsSync(dir) ? dir : undefined;
}
