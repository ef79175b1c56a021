/**
 * nginx from Debian for the interop tests, run as the current user in a temp prefix (its own config, pid, logs
 * and temp dirs; one process, no daemon), listening on a Unix socket in that prefix. Never the system service.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const CANDIDATES = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'];
const INSTALL = path.join(__dirname, '..', '..', 'scripts', 'install-nginx.sh');

/**
 * The nginx binary, installed from Debian by the project's own script when missing, so the README's test
 * command works on a bare machine like the Python interop tests do. apt-get can take minutes: call this from a
 * before() hook with a long timeout.
 */
export function ensureNginx(): string {
  const found = (): string | undefined => CANDIDATES.find((p) => fs.existsSync(p));
  const existing = found();
  if (existing !== undefined) return existing;
  const r = spawnSync(INSTALL, [], { encoding: 'utf8', timeout: 14 * 60_000 });
  const installed = found();
  if (r.status !== 0 || installed === undefined) {
    throw new Error(`scripts/install-nginx.sh failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
  }
  return installed;
}

export interface NginxFiles {
  certPem: string;
  keyPem: string;
  bundlePem: string;
  crlPem: string;
}

export interface RunningNginx {
  socketPath: string;
  errorLog(): string;
  stop(): Promise<void>;
}

/** Starts nginx terminating mTLS (client certificate required, CRL checked) in front of `upstreamPort`. */
export async function startNginx(
  dir: string,
  files: NginxFiles,
  upstreamPort: number,
): Promise<RunningNginx> {
  const NGINX = ensureNginx();
  const write = (name: string, text: string, mode = 0o600): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, text, { mode });
    return f;
  };
  for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
    fs.mkdirSync(path.join(dir, t), { mode: 0o700 });
  const cert = write('svid.pem', files.certPem);
  const key = write('svid.key', files.keyPem);
  const bundle = write('bundle.pem', files.bundlePem);
  const crl = write('crl.pem', files.crlPem);
  const socketPath = path.join(dir, 'nginx.sock');
  const conf = write(
    'nginx.conf',
    `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen unix:${socketPath} ssl;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    ssl_client_certificate ${bundle};
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_crl ${crl};
    location / {
      proxy_pass http://127.0.0.1:${upstreamPort};
      proxy_set_header X-Client-Cert $ssl_client_escaped_cert;
      proxy_set_header X-Client-Verify $ssl_client_verify;
    }
  }
}
`,
  );
  // Checks the configuration first, so a broken one fails with nginx's own words.
  execFileSync(NGINX, ['-t', '-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], { stdio: 'pipe' });
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const until = Date.now() + 10_000;
  while (!fs.existsSync(socketPath)) {
    if (child.exitCode !== null || Date.now() > until) {
      throw new Error(`nginx did not start: ${fs.readFileSync(path.join(dir, 'error.log'), 'utf8')}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    socketPath,
    errorLog: () => fs.readFileSync(path.join(dir, 'error.log'), 'utf8'),
    async stop() {
      if (child.exitCode === null) child.kill('SIGQUIT');
      await exited;
    },
  };
}
