/**
 * The engine reloads when its files change (fs.watch, or the poll alone), keeps the last good set when a
 * reload fails (reporting that content once), and refuses to start on a broken file.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCode, LanyardError } from '../../src/errors';
import { PolicyEngine } from '../../src/policy';
import { tempPolicyDir, verifiedPeers, writeAtomically } from './helpers';
import { removeDir } from '../support/tmp';

const allowFor = (who: string): string =>
  `@id("runner-calls-a")\npermit (principal, action == Lanyard::Action::"call", resource == Lanyard::Service::"service-a") when { principal.rootPrincipal == "${who}" };\n`;

describe('policy: the engine loads, reloads on change and keeps the last good set', () => {
  const dirs: string[] = [];
  const engines: PolicyEngine[] = [];
  const { toolRunner } = verifiedPeers();
  const call = { peer: toolRunner, action: '/demo.ToolService/Run', service: 'service-a' };
  const start = (options: Parameters<typeof PolicyEngine.load>[0]): PolicyEngine => {
    const e = PolicyEngine.load(options);
    engines.push(e);
    return e;
  };
  const dir = (files: Record<string, string>): string => {
    const d = tempPolicyDir(files);
    dirs.push(d);
    return d;
  };
  after(() => {
    engines.forEach((e) => e.close());
    dirs.forEach(removeDir);
  });

  it('refuses to load a broken file, naming it', () => {
    const d = dir({ 'ok.cedar': allowFor('alice'), 'bad.cedar': 'permit(principal, action, resource' });
    assert.throws(
      () => start({ sources: [d], watch: false }),
      (e: unknown) =>
        e instanceof LanyardError &&
        e.code === ErrorCode.POLICY_INVALID &&
        e.message.startsWith(path.join(d, 'bad.cedar')),
    );
  });

  it('an edit on disk changes decisions and the version (fs.watch), and the evaluate answer names it', async () => {
    const d = dir({ 'p.cedar': allowFor('alice') });
    const engine = start({ sources: [d], debounceMs: 20, pollIntervalMs: 0 });
    const v1 = engine.version;
    assert.equal(engine.evaluate(call).decision, 'allow');
    const reloaded = once(engine, 'reload');
    writeAtomically(path.join(d, 'p.cedar'), allowFor('bob'));
    const [v2, previous] = (await reloaded) as [string, string];
    assert.equal(previous, v1);
    assert.notEqual(v2, v1);
    assert.equal(engine.version, v2);
    const d2 = engine.evaluate(call);
    assert.equal(d2.decision, 'deny');
    assert.equal(d2.policyVersion, v2);
  });

  it('a file added to a watched directory joins the set', async () => {
    const d = dir({ 'p.cedar': allowFor('bob') });
    const engine = start({ sources: [d], debounceMs: 20, pollIntervalMs: 0 });
    assert.equal(engine.evaluate(call).decision, 'deny');
    const reloaded = once(engine, 'reload');
    writeAtomically(path.join(d, 'q.cedar'), allowFor('alice').replace('runner-calls-a', 'alice-too'));
    await reloaded;
    assert.deepEqual(engine.evaluate(call).reasons, ['alice-too']);
  });

  it('the poll alone picks up a change when there are no fs events', async () => {
    const d = dir({ 'p.cedar': allowFor('alice') });
    const file = path.join(d, 'p.cedar');
    const engine = start({ sources: [file], fsEvents: false, pollIntervalMs: 30 });
    const v1 = engine.version;
    const reloaded = once(engine, 'reload');
    writeAtomically(file, allowFor('bob'));
    await reloaded;
    assert.notEqual(engine.version, v1);
  });

  it('a broken edit keeps the previous set and version, is reported once, and a fix then applies', async () => {
    const d = dir({ 'p.cedar': allowFor('alice') });
    const file = path.join(d, 'p.cedar');
    const warnings: string[] = [];
    const engine = start({
      sources: [d],
      debounceMs: 20,
      pollIntervalMs: 25,
      logger: { info: () => {}, warn: (obj) => warnings.push(String((obj as { err: string }).err)) },
    });
    const v1 = engine.version;
    const failures: Error[] = [];
    engine.on('reloadFailed', (e) => failures.push(e));
    const failed = once(engine, 'reloadFailed');
    writeAtomically(file, allowFor('alice').replace('rootPrincipal', 'rootPrincpal'));
    const [err] = (await failed) as [Error];
    assert.match(
      err.message,
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:\\d+: policy "runner-calls-a"`),
    );
    assert.equal(engine.version, v1);
    assert.equal(engine.evaluate(call).decision, 'allow');
    // Several polls and the debounced watch event later: still one report for the same broken content.
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(failures.length, 1);
    assert.equal(warnings.length, 1);
    const reloaded = once(engine, 'reload');
    writeAtomically(file, allowFor('bob'));
    await reloaded;
    assert.notEqual(engine.version, v1);
    assert.equal(engine.evaluate(call).decision, 'deny');
  });

  it('a deleted file fails the reload and keeps the set; reload() says whether anything changed', () => {
    const d = dir({ 'p.cedar': allowFor('alice') });
    const file = path.join(d, 'p.cedar');
    const engine = start({ sources: [file], watch: false });
    const v1 = engine.version;
    assert.equal(engine.reload(), false);
    fs.rmSync(file);
    assert.equal(engine.reload(), false);
    assert.equal(engine.version, v1);
    assert.equal(engine.evaluate(call).decision, 'allow');
    writeAtomically(file, allowFor('bob'));
    assert.equal(engine.reload(), true);
    assert.equal(engine.evaluate(call).decision, 'deny');
  });
});
