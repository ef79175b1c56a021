/**
 * The SPIFFE peers of the interop tests, as programs outside Node: a Go program on the standard library only,
 * a Python script on Debian's cryptography (/usr/bin/python3), a Java program on the JDK. scripts/install-peers.sh
 * installs what is missing from Debian; each program is built once per test run into a temp dir (Go offline:
 * GOTOOLCHAIN=local, GOPROXY=off, its build cache kept between runs in the temp dir). Every program reads a
 * manifest (name, chain PEM, bundle PEM, expected SPIFFE ID) and prints one JSON object per case; the tests
 * judge what they report.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runProcess } from '../../../support/server-process';
import { REPO_ROOT } from '../../../support/paths';

const REPO = REPO_ROOT;
const SOURCES = path.join(__dirname, '..', 'peers');

/** One SVID for the peers: files they read, and the SPIFFE ID it must carry. */
export interface PeerCase {
  name: string;
  /** PEM: the leaf first, then any intermediates. */
  chainFile: string;
  /** PEM: the trust domain's roots (e.g. `lanyard bundle show`). */
  bundleFile: string;
  expectedId: string;
}

export interface PeerExtension {
  critical: boolean;
  valueHex: string;
}

export interface GoResult {
  name: string;
  /** Go's crypto/x509 could not parse a certificate: nothing else is reported. */
  parseError?: string;
  uris: string[];
  /** x509.Certificate.Verify for ExtKeyUsageClientAuth: '' when it verified, else Go's error. */
  clientAuth: string;
  serverAuth: string;
  /** The X509-SVID leaf rules: '' when they hold. */
  svidProblem: string;
  /** The extension under the OID asked for; null when the leaf has none there. */
  extension: PeerExtension | null;
  chainsToRoot: number;
}

export interface PythonResult {
  name: string;
  cryptography: string;
  parseError?: string;
  uris?: string[];
  extension?: PeerExtension | null;
  /** '' when every signature from the leaf up to a bundle root checks. */
  pathProblem?: string;
}

export interface JavaResult {
  name: string;
  java: string;
  parseError?: string;
  uris?: string[];
  extension?: PeerExtension | null;
  /** '' when CertPathValidator (PKIX) validated the chain to a bundle root. */
  pkixProblem?: string;
}

let installed: Promise<void> | undefined;

/** Runs scripts/install-peers.sh once per process: quick when everything is there, apt-get otherwise. */
export function installPeers(): Promise<void> {
  installed ??= runProcess('bash', [path.join(REPO, 'scripts', 'install-peers.sh')], {
    ignoreStdin: true,
  }).then((r) => {
    if (r.code !== 0) throw new Error(`scripts/install-peers.sh failed (${r.code}):\n${r.stdout}${r.stderr}`);
  });
  return installed;
}

/** Go's build cache survives runs (the standard library compiles once per machine); nothing else does. */
const GO_CACHE = path.join(os.tmpdir(), 'lanyard-interop-go-cache');

export class PeerPrograms {
  private constructor(
    private readonly dir: string,
    private readonly goBinary: string,
  ) {}

  /** Builds the Go and Java programs (Python needs no build) into a fresh temp dir. */
  static async build(): Promise<PeerPrograms> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-peers-'));
    const goBinary = path.join(dir, 'verify-svids');
    const [go, java] = await Promise.all([
      runProcess(goCommand(), ['build', '-o', goBinary, path.join(SOURCES, 'go', 'verify_svids.go')], {
        cwd: dir,
        env: goEnv(dir),
        ignoreStdin: true,
      }),
      runProcess('javac', ['-d', dir, path.join(SOURCES, 'java', 'VerifySvids.java')], { ignoreStdin: true }),
    ]);
    if (go.code !== 0) throw new Error(`go build failed:\n${go.stdout}${go.stderr}`);
    if (java.code !== 0) throw new Error(`javac failed:\n${java.stdout}${java.stderr}`);
    return new PeerPrograms(dir, goBinary);
  }

  go(oid: string, cases: readonly PeerCase[]): Promise<GoResult[]> {
    return this.run(this.goBinary, [oid], cases);
  }

  python(oid: string, cases: readonly PeerCase[]): Promise<PythonResult[]> {
    return this.run('/usr/bin/python3', [path.join(SOURCES, 'python', 'read_svids.py'), oid], cases);
  }

  java(oid: string, cases: readonly PeerCase[]): Promise<JavaResult[]> {
    return this.run('java', ['-cp', this.dir, 'VerifySvids', oid], cases);
  }

  close(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private async run<T extends { name: string }>(
    command: string,
    args: string[],
    cases: readonly PeerCase[],
  ): Promise<T[]> {
    const manifest = path.join(fs.mkdtempSync(path.join(this.dir, 'run-')), 'manifest.tsv');
    fs.writeFileSync(
      manifest,
      cases.map((c) => [c.name, c.chainFile, c.bundleFile, c.expectedId].join('\t')).join('\n') + '\n',
    );
    // Python's bytecode cache would land beside the script, in the repository.
    const r = await runProcess(command, [...args, manifest], {
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
      ignoreStdin: true,
    });
    if (r.code !== 0) throw new Error(`${command} exited ${r.code}:\n${r.stdout}${r.stderr}`);
    const results = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as T);
    if (results.length !== cases.length || results.some((x, i) => x.name !== cases[i]!.name)) {
      throw new Error(
        `${command} answered for ${results.length} of ${cases.length} cases:\n${r.stdout}${r.stderr}`,
      );
    }
    return results;
  }
}

/** Debian puts go on PATH through /usr/bin/go; /usr/lib/go/bin/go is the same toolchain. */
function goCommand(): string {
  return fs.existsSync('/usr/bin/go') || !fs.existsSync('/usr/lib/go/bin/go') ? 'go' : '/usr/lib/go/bin/go';
}

/** Offline and local: the toolchain installed, no module proxy, caches in temp dirs. */
function goEnv(dir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GOCACHE: GO_CACHE,
    GOPATH: path.join(dir, 'gopath'),
    GOTOOLCHAIN: 'local',
    GOPROXY: 'off',
    GOFLAGS: '',
    GO111MODULE: 'on',
    CGO_ENABLED: '0',
  };
}
