/**
 * deploy/kubernetes/ stays applicable: every object validates against the Kubernetes schemas (the
 * kubernetes-models package, generated from the upstream OpenAPI), the server config it mounts is accepted by the
 * server's own config loader, and the pieces that must agree do: the agent's flags exist on `lanyard agent run`,
 * its projected token has the audience the server's k8s_psat attestor expects, and the files the config names are
 * where the volumes put them. No cluster runs here, so nothing is applied.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { registerAgentCommands } from '../../../src/cli/commands/agent';
import { resolveConfig } from '../../../src/server/config';
import { REPO_ROOT } from '../../support/paths';
import { removeDir, tempDir } from '../../support/tmp';

const DIR = join(REPO_ROOT, 'deploy', 'kubernetes');

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

/** Every document of every manifest file. */
function manifests(): K8sObject[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d) => {
        assert.deepEqual(d.errors, [], `${f}: YAML errors`);
        return d.toJS() as K8sObject;
      }),
    );
}

/** Validates `obj` with the kubernetes-models class of its apiVersion and kind. @throws what the schema refuses. */
async function validate(obj: K8sObject): Promise<void> {
  const models: Record<string, Record<string, unknown>> = {
    v1: (await import('kubernetes-models/v1')) as Record<string, unknown>,
    'apps/v1': (await import('kubernetes-models/apps/v1')) as Record<string, unknown>,
  };
  const Model = models[obj.apiVersion]?.[obj.kind] as (new (o: unknown) => { validate(): void }) | undefined;
  assert.ok(Model !== undefined, `no model for ${obj.apiVersion} ${obj.kind}`);
  new Model(obj).validate();
}

function find<T = Record<string, unknown>>(objs: K8sObject[], kind: string, name: string): K8sObject & T {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o !== undefined, `${kind}/${name} is in deploy/kubernetes`);
  return o as K8sObject & T;
}

interface PodSpec {
  containers: {
    args?: string[];
    command?: string[];
    volumeMounts: { name: string; mountPath: string; subPath?: string }[];
  }[];
  volumes: {
    name: string;
    hostPath?: { path: string };
    secret?: { defaultMode?: number; items?: { key: string; path: string }[] };
    projected?: { sources: { serviceAccountToken?: { path: string; audience: string } }[] };
  }[];
}
type Workload = { spec: { template: { spec: PodSpec } } };

function flag(args: string[], name: string): string {
  const i = args.indexOf(name);
  assert.ok(i >= 0 && i + 1 < args.length, `the agent is given ${name}`);
  return args[i + 1]!;
}

describe('deploy/kubernetes: manifests against the Kubernetes schemas and the project', function () {
  this.timeout(60_000);
  const objs = manifests();

  it('holds the server StatefulSet with its config, the agent DaemonSet and its ServiceAccount, all schema-valid', async () => {
    assert.deepEqual(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
      'ConfigMap/lanyard-server',
      'DaemonSet/lanyard-agent',
      'Namespace/lanyard',
      'Service/lanyard-server',
      'ServiceAccount/lanyard-agent',
      'StatefulSet/lanyard-server',
    ]);
    for (const o of objs) await validate(o);
  });

  it('the schema check is not vacuous: a container without a name or with a text port is refused', async () => {
    const broken = structuredClone(find<Workload>(objs, 'StatefulSet', 'lanyard-server'));
    const container = broken.spec.template.spec.containers[0] as unknown as Record<string, unknown>;
    delete container.name;
    (container.ports as { containerPort: unknown }[])[0]!.containerPort = 'grpc';
    await assert.rejects(
      validate(broken),
      /must have required property 'name'|must have required property name/,
    );
    await assert.rejects(validate(broken), /containerPort must be integer/);
  });

  it("the server's config is accepted by its own loader: PostgreSQL with a 0400 password file, k8s_psat", () => {
    const cm = find<{ data: Record<string, string> }>(objs, 'ConfigMap', 'lanyard-server');
    // The loader reads the files the config names: lay them out as the pod's volumes would, under a temp root.
    const root = tempDir('k8s-pod');
    const text = cm.data['server.yaml']!.replaceAll('/etc/lanyard/', `${root}/etc/lanyard/`).replaceAll(
      '/var/lib/lanyard',
      `${root}/var/lib/lanyard`,
    );
    mkdirSync(join(root, 'etc/lanyard/k8s'), { recursive: true });
    mkdirSync(join(root, 'etc/lanyard/postgres'), { recursive: true });
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    writeFileSync(
      join(root, 'etc/lanyard/k8s/jwks.json'),
      JSON.stringify({ keys: [{ ...jwk, kid: 'sa-1' }] }),
    );
    writeFileSync(join(root, 'etc/lanyard/postgres/password'), 'secret\n', { mode: 0o400 });
    const raw = parseAllDocuments(cm.data['server.yaml']!)[0]!.toJS() as unknown;
    try {
      const config = resolveConfig(parseAllDocuments(text)[0]!.toJS(), {
        baseDir: join(root, 'etc/lanyard'),
        source: 'server.yaml',
        cwd: root,
        env: {},
      });
      assert.equal(config.trustDomain, 'lanyard.local');
      assert.equal(config.dataDir, join(root, 'var/lib/lanyard'));
    } finally {
      removeDir(root);
    }
    const sts = find<Workload>(objs, 'StatefulSet', 'lanyard-server');
    const pod = sts.spec.template.spec;
    const store = (raw as { store: { postgres: { password_file: string } } }).store.postgres;
    // The password file is where the Secret volume puts it, with a mode the server accepts.
    const mount = pod.containers[0]!.volumeMounts.find((m) => m.name === 'postgres-password')!;
    const secret = pod.volumes.find((v) => v.name === 'postgres-password')!.secret!;
    assert.equal(store.password_file, posix.join(mount.mountPath, secret.items![0]!.path));
    assert.equal(secret.defaultMode, 0o400);
    // The config file itself is mounted where the command reads it.
    const command = pod.containers[0]!.command!;
    const configMount = pod.containers[0]!.volumeMounts.find((m) => m.name === 'config')!;
    assert.equal(command[command.indexOf('--config') + 1], configMount.mountPath);
  });

  it("the agent's flags exist on `lanyard agent run`; its token and socket are where the pod mounts them", () => {
    const ds = find<Workload>(objs, 'DaemonSet', 'lanyard-agent');
    const pod = ds.spec.template.spec;
    const args = pod.containers[0]!.args!;
    assert.deepEqual(args.slice(0, 2), ['agent', 'run']);
    const program = new Command();
    registerAgentCommands(program);
    const run = program.commands.find((c) => c.name() === 'agent')!.commands.find((c) => c.name() === 'run')!;
    const known = new Set(run.options.map((o) => o.long));
    for (const a of args.filter((x) => x.startsWith('--'))) assert.ok(known.has(a), `agent run has ${a}`);

    assert.equal(flag(args, '--attestor'), 'k8s_psat');
    const token = pod.volumes.find((v) => v.projected !== undefined)!;
    const sa = token.projected!.sources[0]!.serviceAccountToken!;
    const tokenMount = pod.containers[0]!.volumeMounts.find((m) => m.name === token.name)!;
    assert.equal(flag(args, '--psat-token-file'), posix.join(tokenMount.mountPath, sa.path));

    // The audience the server's k8s_psat cluster expects is the one the projected token carries.
    const cm = find<{ data: Record<string, string> }>(objs, 'ConfigMap', 'lanyard-server');
    const raw = parseAllDocuments(cm.data['server.yaml']!)[0]!.toJS() as {
      attestors: { k8s_psat: { clusters: { audience: string; allowed_service_accounts: string[] }[] } };
    };
    const cluster = raw.attestors.k8s_psat.clusters[0]!;
    assert.equal(sa.audience, cluster.audience);
    assert.deepEqual(cluster.allowed_service_accounts, [`${ds.metadata.namespace}:lanyard-agent`]);
    assert.equal(
      (ds.spec.template.spec as unknown as { serviceAccountName: string }).serviceAccountName,
      'lanyard-agent',
    );

    // Workload pods reach the socket through the hostPath the agent creates it in.
    const socketDir = posix.dirname(flag(args, '--socket'));
    const socketMount = pod.containers[0]!.volumeMounts.find((m) => m.mountPath === socketDir);
    assert.ok(socketMount !== undefined, 'the socket directory is a mounted volume');
    assert.ok(pod.volumes.find((v) => v.name === socketMount.name)!.hostPath !== undefined);
  });
});
