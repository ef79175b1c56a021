import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ErrorCode, isLanyardError } from '../../src/errors';
import { CONFIG_DEFAULTS, loadConfig } from '../../src/server/config';
import { WATCH_DEFAULTS } from '../../src/server/sessions/watch-revocations';

describe('server config', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-config-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  /** Asserts a ConfigError whose message contains every fragment. */
  const fails = (fn: () => unknown, ...fragments: string[]): void => {
    assert.throws(fn, (e: unknown) => {
      assert.ok(isLanyardError(e));
      assert.equal(e.code, ErrorCode.INVALID_CONFIG);
      for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" lacks "${f}"`);
      return true;
    });
  };

  it('oidc_discovery: off by default; an https issuer without query, fragment or trailing slash', () => {
    const load = (name: string, text: string) =>
      loadConfig({ cwd: dir, env: {}, configFile: write(name, text) });
    write('oidc.pem', 'x');
    write('oidc.key', 'x');
    assert.equal(loadConfig({ cwd: dir, env: {} }).oidcDiscovery, undefined);
    const block = (issuer: string): string =>
      `oidc_discovery:\n  issuer: ${JSON.stringify(issuer)}\n  listen_address: 127.0.0.1:8443\n` +
      '  cert_file: oidc.pem\n  key_file: oidc.key\n';
    assert.deepEqual(load('o1.yaml', block('https://oidc.example.org/td')).oidcDiscovery, {
      issuer: 'https://oidc.example.org/td',
      listenAddress: { host: '127.0.0.1', port: 8443 },
      tls: { certFile: path.join(dir, 'oidc.pem'), keyFile: path.join(dir, 'oidc.key') },
    });
    fails(() => load('o2.yaml', block('http://oidc.example.org')), 'oidc_discovery.issuer', 'https');
    fails(() => load('o3.yaml', block('https://oidc.example.org?x=1')), 'no query or fragment');
    fails(() => load('o4.yaml', block('https://oidc.example.org/#a')), 'no query or fragment');
    fails(
      () => load('o5.yaml', block('https://oidc.example.org/')),
      'write it as "https://oidc.example.org"',
    );
    fails(() => load('o6.yaml', block('oidc.example.org')), 'not a URL');
    fails(() => load('o7.yaml', 'oidc_discovery:\n  issuer: "https://a.example"\n'), 'oidc_discovery');
  });

  it('runs with no file and no environment on the documented defaults', () => {
    const config = loadConfig({ cwd: dir, env: {} });
    assert.deepEqual(config, {
      trustDomain: CONFIG_DEFAULTS.trust_domain,
      dataDir: path.join(dir, '.lanyard'),
      listenAddress: { host: '127.0.0.1', port: 8081 },
      adminSocketPath: path.join(dir, '.lanyard', 'admin.sock'),
      caTtlSeconds: 86400,
      caSigningWorkers: 0,
      svidDefaultTtlSeconds: 3600,
      logLevel: 'info',
      shutdownGraceSeconds: 10,
      maxMessageBytes: 4 * 1024 * 1024,
      attestors: { joinToken: {} },
      principalIssuers: [],
      agentContextOid: '1.3.6.1.4.1.262144.1.1',
      limits: {
        liveSessionsPerAgent: 1000,
        endedSessionsPerAgent: 3600,
        endedSessionsWindowSeconds: 3600,
        maxSessionTtlSeconds: 86400,
        watchers: 4096,
        watchersPerConnection: 4,
        watchersPerIdentity: 256,
      },
      revocationFeed: { heartbeatSeconds: 15, stallTimeoutSeconds: 30, warmSnapshot: true },
    });
  });

  it('reads the session and watcher limits and the revocation feed timing; refuses a zero limit', () => {
    const file = write(
      'limits.yaml',
      'limits:\n  live_sessions_per_agent: 3\n  ended_sessions_window: 10m\n  watchers_per_connection: 2\n' +
        '  max_session_ttl: 2h\n' +
        'revocation_feed:\n  heartbeat: 5s\n  stall_timeout: 1m\n  warm_snapshot: false\n',
    );
    const config = loadConfig({ cwd: dir, env: {}, configFile: file });
    assert.equal(config.limits.liveSessionsPerAgent, 3);
    assert.equal(config.limits.endedSessionsWindowSeconds, 600);
    assert.equal(config.limits.maxSessionTtlSeconds, 7200);
    assert.equal(config.limits.watchersPerConnection, 2);
    assert.equal(config.limits.watchers, 4096);
    assert.deepEqual(config.revocationFeed, {
      heartbeatSeconds: 5,
      stallTimeoutSeconds: 60,
      warmSnapshot: false,
    });
    // The server's default and the watchers' are one.
    assert.equal(CONFIG_DEFAULTS.revocation_warm_snapshot, WATCH_DEFAULTS.warmSnapshot);
    fails(
      () => loadConfig({ cwd: dir, env: {}, configFile: write('z.yaml', 'limits:\n  watchers: 0\n') }),
      'limits.watchers',
    );
  });

  it('refuses a duration without a unit, as a YAML number or a string, naming the field', () => {
    for (const [text, field] of [
      ['shutdown_grace: 10\n', 'shutdown_grace'],
      ['svid:\n  default_ttl: "3600"\n', 'svid.default_ttl'],
      ['ca:\n  ttl: 1.5h\n', 'ca.ttl'],
    ] as const) {
      fails(() => loadConfig({ cwd: dir, env: {}, configFile: write('d.yaml', text) }), field);
    }
    fails(
      () => loadConfig({ cwd: dir, env: {}, configFile: write('d.yaml', 'shutdown_grace: 10\n') }),
      'has no unit: write 10s, 10m, 10h or 10d',
    );
    assert.equal(
      loadConfig({ cwd: dir, env: {}, configFile: write('d.yaml', 'shutdown_grace: 10s\n') })
        .shutdownGraceSeconds,
      10,
    );
  });

  it('reads federation: the bundle endpoint per profile and the polling bounds; refuses what does not fit', () => {
    const load = (name: string, text: string) =>
      loadConfig({ cwd: dir, env: {}, configFile: write(name, text) });
    write('web.pem', 'x');
    write('web.key', 'x');
    const spiffe = load(
      'f1.yaml',
      'federation:\n  bundle_endpoint:\n    listen_address: 127.0.0.1:8443\n    profile: https_spiffe\n  refresh_hint: 2m\n',
    ).federation;
    assert.deepEqual(spiffe?.bundleEndpoint, {
      listenAddress: { host: '127.0.0.1', port: 8443 },
      tls: { profile: 'https_spiffe' },
    });
    assert.equal(spiffe?.bundleRefreshHintSeconds, 120);
    assert.equal(spiffe?.defaultRefreshSeconds, CONFIG_DEFAULTS.federation_default_refresh);
    const web = load(
      'f2.yaml',
      'federation:\n  bundle_endpoint:\n    listen_address: 127.0.0.1:8443\n    profile: https_web\n' +
        '    cert_file: web.pem\n    key_file: web.key\n',
    ).federation;
    assert.equal(web?.bundleEndpoint?.tls.profile, 'https_web');
    fails(
      () =>
        load(
          'f3.yaml',
          'federation:\n  bundle_endpoint:\n    listen_address: 127.0.0.1:1\n    profile: https_web\n',
        ),
      'https_web needs cert_file and key_file',
    );
    fails(
      () =>
        load(
          'f4.yaml',
          'federation:\n  bundle_endpoint:\n    listen_address: 127.0.0.1:1\n    profile: https_spiffe\n    cert_file: web.pem\n',
        ),
      'cert_file and key_file are for https_web',
    );
    fails(
      () => load('f5.yaml', 'federation:\n  min_refresh: 10m\n  max_refresh: 1m\n'),
      'federation.min_refresh',
    );
  });

  it('ships an example file whose every value is the default', () => {
    const example = path.join(__dirname, '..', '..', 'src', 'server', 'config.example.yaml');
    const fromExample = loadConfig({ cwd: dir, env: {}, configFile: example });
    const { configFile, ...rest } = fromExample;
    assert.equal(configFile, example);
    assert.deepEqual(rest, loadConfig({ cwd: dir, env: {} }));
  });

  it('takes agent_context.oid from --agent-context-oid, the file, LANYARD_AGENT_CONTEXT_OID, the default', () => {
    const env = { LANYARD_AGENT_CONTEXT_OID: '1.3.6.1.4.1.99999.1' };
    assert.equal(loadConfig({ cwd: dir, env: {} }).agentContextOid, CONFIG_DEFAULTS.agent_context_oid);
    assert.equal(loadConfig({ cwd: dir, env }).agentContextOid, '1.3.6.1.4.1.99999.1');
    const file = write('oid.yaml', 'agent_context:\n  oid: 1.3.6.1.4.1.99999.2\n');
    assert.equal(loadConfig({ cwd: dir, env, configFile: file }).agentContextOid, '1.3.6.1.4.1.99999.2');
    assert.equal(
      loadConfig({ cwd: dir, env, configFile: file, agentContextOid: '2.999.3' }).agentContextOid,
      '2.999.3',
    );
    // An empty block, or one with only comments, keeps the environment and the default in force.
    const empty = write('empty.yaml', 'agent_context:\n');
    assert.equal(loadConfig({ cwd: dir, env, configFile: empty }).agentContextOid, '1.3.6.1.4.1.99999.1');
  });

  it('refuses an agent_context.oid that is not dotted decimal or has an arc of 2^28 or more, naming the source', () => {
    for (const [text, fragment] of [
      ['agent_context:\n  oid: 1.3.6.1.4.1.268435456.1\n', '2^28'],
      ["agent_context:\n  oid: '2.25.31710684403515015008777295008216665364'\n", '2^28'],
      ["agent_context:\n  oid: 'spiffe'\n", 'dotted decimal'],
      ["agent_context:\n  oid: '4.1'\n", 'dotted decimal'],
      ['agent_context:\n  oid: 1.3\n', 'expected an OID in quotes'],
      ["agent_context:\n  oid: '1.45.2'\n", 'below 40'],
      ['agent_context:\n  oid: 1.3.6\n  other: 1\n', 'agent_context.other: unknown field'],
    ] as const) {
      const file = write('bad.yaml', text);
      fails(() => loadConfig({ cwd: dir, env: {}, configFile: file }), file, fragment);
    }
    const number = write('number.yaml', 'agent_context:\n  oid: 1.3\n');
    fails(() => loadConfig({ cwd: dir, env: {}, configFile: number }), 'agent_context.oid');
    fails(
      () => loadConfig({ cwd: dir, env: { LANYARD_AGENT_CONTEXT_OID: `1.3.6.1.4.1.${2 ** 31}` } }),
      'LANYARD_AGENT_CONTEXT_OID',
      '2^28',
    );
    fails(
      () => loadConfig({ cwd: dir, env: {}, agentContextOid: '1.3.6.1.4.1.x' }),
      '--agent-context-oid',
      'dotted decimal',
    );
  });

  it('takes the listen address from the file, then LANYARD_LISTEN_ADDRESS, then the default', () => {
    const env = { LANYARD_LISTEN_ADDRESS: '127.0.0.1:0' };
    assert.deepEqual(loadConfig({ cwd: dir, env }).listenAddress, { host: '127.0.0.1', port: 0 });
    assert.deepEqual(loadConfig({ cwd: dir, env: { LANYARD_LISTEN_ADDRESS: '[::1]:9' } }).listenAddress, {
      host: '::1',
      port: 9,
    });
    const file = write('l.yaml', 'listen_address: 127.0.0.2:7000\n');
    assert.deepEqual(loadConfig({ cwd: dir, env, configFile: file }).listenAddress, {
      host: '127.0.0.2',
      port: 7000,
    });
    // A file without the key leaves the environment in force.
    const other = write('o.yaml', 'trust_domain: env.example\n');
    assert.deepEqual(loadConfig({ cwd: dir, env, configFile: other }).listenAddress, {
      host: '127.0.0.1',
      port: 0,
    });
    fails(
      () => loadConfig({ cwd: dir, env: { LANYARD_LISTEN_ADDRESS: '8081' } }),
      'LANYARD_LISTEN_ADDRESS',
      'host:port',
    );
    fails(
      () => loadConfig({ cwd: dir, env: { LANYARD_LISTEN_ADDRESS: 'h:99999' } }),
      'LANYARD_LISTEN_ADDRESS',
    );
  });

  it('takes the data dir from the flag, then the file, then LANYARD_DATA_DIR', () => {
    const env = { LANYARD_DATA_DIR: path.join(dir, 'env') };
    assert.equal(loadConfig({ cwd: dir, env }).dataDir, path.join(dir, 'env'));
    const file = write('c.yaml', 'data_dir: from-file\n');
    assert.equal(loadConfig({ cwd: '/', env, configFile: file }).dataDir, path.join(dir, 'from-file'));
    assert.equal(
      loadConfig({ cwd: dir, env, configFile: file, dataDir: 'flag' }).dataDir,
      path.join(dir, 'flag'),
    );
  });

  it('reads a full YAML file, durations with units, paths relative to the file', () => {
    write('jwks.json', '{"keys":[]}');
    write('pop.pem', '');
    const file = write(
      'server.yaml',
      `trust_domain: agents.example
listen_address: "[::1]:0"
admin:
  socket_path: sock/admin.sock
ca: { ttl: 2d }
svid: { default_ttl: 15m }
log: { level: debug }
shutdown_grace: 3s
attestors:
  join_token: {}
  k8s_psat:
    clusters:
      - name: prod
        jwks_file: jwks.json
        issuer: https://kubernetes.default.svc
  x509pop:
    ca_bundle_file: pop.pem
`,
    );
    const c = loadConfig({ cwd: '/', env: {}, configFile: file });
    assert.equal(c.trustDomain, 'agents.example');
    assert.deepEqual(c.listenAddress, { host: '::1', port: 0 });
    assert.equal(c.adminSocketPath, path.join(dir, 'sock', 'admin.sock'));
    assert.equal(c.caTtlSeconds, 2 * 86400);
    assert.equal(c.svidDefaultTtlSeconds, 900);
    assert.equal(c.logLevel, 'debug');
    assert.equal(c.shutdownGraceSeconds, 3);
    assert.deepEqual(c.attestors, {
      joinToken: {},
      k8sPsat: {
        clusters: [
          {
            name: 'prod',
            audience: 'lanyard',
            jwksFile: path.join(dir, 'jwks.json'),
            issuer: 'https://kubernetes.default.svc',
          },
        ],
      },
      x509pop: { caBundleFile: path.join(dir, 'pop.pem') },
    });
    assert.equal(c.configFile, file);
  });

  it('reads JSON too', () => {
    const file = write('c.json', '{"trust_domain": "json.example"}');
    assert.equal(loadConfig({ env: {}, configFile: file }).trustDomain, 'json.example');
  });

  describe('a bad config stops start-up with a message naming the field', () => {
    const cases: [string, string, string[]][] = [
      ['unknown top-level field', 'trust_domian: x\n', ['trust_domian: unknown field']],
      ['unknown nested field', 'log: { lvl: debug }\n', ['log.lvl: unknown field']],
      ['bad trust domain', 'trust_domain: Not_Valid\n', ['trust_domain:', 'lowercase']],
      ['bad log level', 'log: { level: loud }\n', ['log.level']],
      ['bad duration', 'ca: { ttl: soon }\n', ['ca.ttl', 'duration']],
      ['signing workers out of range', 'ca: { signing_workers: 65 }\n', ['ca.signing_workers']],
      ['negative duration', 'shutdown_grace: -1\n', ['shutdown_grace']],
      [
        'SVID outliving its CA',
        'ca: { ttl: 1h }\nsvid: { default_ttl: 2h }\n',
        ['svid.default_ttl', 'ca.ttl'],
      ],
      ['bad listen address', 'listen_address: localhost\n', ['listen_address', 'host:port']],
      [
        'missing required nested field',
        'attestors: { k8s_psat: { clusters: [ { name: a } ] } }\n',
        ['attestors.k8s_psat.clusters[0].jwks_file: required'],
      ],
      [
        'unreadable file',
        'attestors: { x509pop: { ca_bundle_file: nope.pem } }\n',
        ['attestors.x509pop.ca_bundle_file', 'cannot read'],
      ],
      ['not YAML', 'a: [\n', ['not valid YAML']],
      ['too small message limit', 'max_message_bytes: 10\n', ['max_message_bytes']],
    ];
    for (const [name, text, fragments] of cases) {
      it(name, () => {
        const file = write('bad.yaml', text);
        fails(() => loadConfig({ env: {}, configFile: file }), file, ...fragments);
      });
    }

    it('an admin socket path too long for a Unix socket', () => {
      fails(
        () => loadConfig({ env: {}, dataDir: path.join(dir, 'x'.repeat(120)) }),
        'data_dir',
        'Unix socket',
      );
    });

    it('a config file that does not exist', () => {
      fails(
        () => loadConfig({ env: {}, configFile: path.join(dir, 'missing.yaml') }),
        'cannot read config file',
      );
    });
  });
  describe('metrics', () => {
    it('is off by default, and on at 127.0.0.1:9464 with metrics.enabled', () => {
      assert.equal(loadConfig({ cwd: dir, env: {} }).metricsListenAddress, undefined);
      const on = loadConfig({ configFile: write('m.yaml', 'metrics:\n  enabled: true\n'), env: {} });
      assert.deepEqual(on.metricsListenAddress, { host: '127.0.0.1', port: 9464 });
      assert.equal(CONFIG_DEFAULTS.metrics_listen_address, '127.0.0.1:9464');
    });

    it('turns on with a listen_address, and enabled: false keeps it off even then', () => {
      const at = loadConfig({
        configFile: write('a.yaml', 'metrics:\n  listen_address: "[::1]:9100"\n'),
        env: {},
      });
      assert.deepEqual(at.metricsListenAddress, { host: '::1', port: 9100 });
      const off = loadConfig({
        configFile: write('o.yaml', 'metrics:\n  enabled: false\n  listen_address: 127.0.0.1:9100\n'),
        env: {},
      });
      assert.equal(off.metricsListenAddress, undefined);
    });

    it('refuses a non-loopback address unless allow_non_loopback is set', () => {
      for (const address of ['0.0.0.0:9464', '10.1.2.3:9464', '"[::]:9464"', 'metrics.example.com:9464']) {
        const file = write('n.yaml', `metrics:\n  listen_address: ${address}\n`);
        fails(
          () => loadConfig({ configFile: file, env: {} }),
          'metrics.listen_address',
          'not a loopback address',
          'metrics.allow_non_loopback',
        );
      }
      const allowed = loadConfig({
        configFile: write('y.yaml', 'metrics:\n  listen_address: 0.0.0.0:9464\n  allow_non_loopback: true\n'),
        env: {},
      });
      assert.deepEqual(allowed.metricsListenAddress, { host: '0.0.0.0', port: 9464 });
    });

    it('refuses a malformed address and unknown fields', () => {
      fails(
        () => loadConfig({ configFile: write('b.yaml', 'metrics:\n  listen_address: 9464\n'), env: {} }),
        'metrics.listen_address',
      );
      fails(
        () => loadConfig({ configFile: write('c.yaml', 'metrics:\n  port: 9464\n'), env: {} }),
        'metrics.port: unknown field',
      );
    });
  });
});
