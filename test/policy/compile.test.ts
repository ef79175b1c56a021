/**
 * Loading policy files: a set that parses and validates against the Lanyard schema gets stable ids and a
 * content-hash version; anything else is refused with a message that names the file, the line and the error.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCode, LanyardError } from '../../src/errors';
import { compilePolicies, readPolicyFiles } from '../../src/policy';
import { tempPolicyDir } from './helpers';
import { removeDir } from '../support/tmp';

const PERMIT_RUNNER = `@id("tool-runner-may-call-a")
permit (
  principal,
  action == Lanyard::Action::"call",
  resource == Lanyard::Service::"service-a"
) when { principal.rootPrincipal == "alice" && principal.scopes.contains("tools:run") };
`;
const FORBID_DEEP = `forbid (principal, action, resource) when { principal.delegationDepth > 3 };\n`;

function refusal(fn: () => unknown): LanyardError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof LanyardError, String(e));
    assert.equal(e.code, ErrorCode.POLICY_INVALID);
    return e;
  }
  assert.fail('expected ERR_POLICY_INVALID');
}

describe('policy: loading and validating Cedar policy files', () => {
  const dirs: string[] = [];
  const dir = (files: Record<string, string>): string => {
    const d = tempPolicyDir(files);
    dirs.push(d);
    return d;
  };
  after(() => dirs.forEach(removeDir));

  it('reads a directory of *.cedar files in name order, with @id or file#n ids and a sha256 version', () => {
    const d = dir({ 'b.cedar': FORBID_DEEP, 'a.cedar': PERMIT_RUNNER, 'notes.txt': 'not a policy' });
    const set = compilePolicies(readPolicyFiles([d]));
    assert.deepEqual(set.files, [path.join(d, 'a.cedar'), path.join(d, 'b.cedar')]);
    assert.deepEqual(Object.keys(set.policies).sort(), ['b#1', 'tool-runner-may-call-a']);
    assert.equal(set.origins['b#1'], path.join(d, 'b.cedar'));
    assert.match(set.version, /^sha256:[0-9a-f]{32}$/);
  });

  it('the version ignores whitespace, comments and file layout, and changes with what a policy says', () => {
    const base = compilePolicies(readPolicyFiles([dir({ 'p.cedar': PERMIT_RUNNER })])).version;
    const reformatted = `// the runner may call A for alice\n${PERMIT_RUNNER.replace(/\n\s*/g, ' ')}\n\n`;
    assert.equal(compilePolicies(readPolicyFiles([dir({ 'p.cedar': reformatted })])).version, base);
    const single = dir({ 'p.cedar': PERMIT_RUNNER });
    assert.equal(compilePolicies(readPolicyFiles([path.join(single, 'p.cedar')])).version, base);
    const bob = PERMIT_RUNNER.replace('"alice"', '"bob"');
    assert.notEqual(compilePolicies(readPolicyFiles([dir({ 'p.cedar': bob })])).version, base);
    const renamed = PERMIT_RUNNER.replace('tool-runner-may-call-a', 'renamed');
    assert.notEqual(compilePolicies(readPolicyFiles([dir({ 'p.cedar': renamed })])).version, base);
  });

  it('a policy that does not parse is refused naming the file, line and column', () => {
    const d = dir({
      'ok.cedar': PERMIT_RUNNER,
      'broken.cedar': `\n\npermit(principal, action, resource) when { principal.scopes = 1 };\n`,
    });
    const e = refusal(() => compilePolicies(readPolicyFiles([d])));
    assert.match(
      e.message,
      new RegExp(`^${escape(path.join(d, 'broken.cedar'))}:3:\\d+: .*'=' is not a valid operator`),
    );
  });

  it('a policy that names an attribute the schema does not have is refused naming the file and policy', () => {
    const d = dir({
      'typo.cedar': `${PERMIT_RUNNER}\n@id("typo")\npermit(principal, action, resource) when { principal.rootPrincpal == "alice" };\n`,
    });
    const e = refusal(() => compilePolicies(readPolicyFiles([d])));
    assert.match(
      e.message,
      new RegExp(`^${escape(path.join(d, 'typo.cedar'))}:9:\\d+: policy "typo" does not validate`),
    );
    assert.match(e.message, /rootPrincpal/);
  });

  it('an undeclared action or a wrongly typed comparison does not validate', () => {
    const action = dir({ 'a.cedar': `permit(principal, action == Lanyard::Action::"read", resource);` });
    assert.match(
      refusal(() => compilePolicies(readPolicyFiles([action]))).message,
      /a\.cedar:1:\d+: policy "a#1"/,
    );
    const typed = dir({
      't.cedar': `permit(principal, action, resource) when { principal.delegationDepth == "2" };`,
    });
    assert.match(
      refusal(() => compilePolicies(readPolicyFiles([typed]))).message,
      /t\.cedar:1:\d+: policy "t#1"/,
    );
  });

  it('the same policy id in two files is refused naming both', () => {
    const d = dir({ 'one.cedar': PERMIT_RUNNER, 'two.cedar': PERMIT_RUNNER });
    const e = refusal(() => compilePolicies(readPolicyFiles([d])));
    assert.match(
      e.message,
      /two\.cedar:1:1: policy id "tool-runner-may-call-a" is also used in .*one\.cedar/,
    );
  });

  it('templates, a missing file and a directory without *.cedar files are refused', () => {
    const t = dir({ 't.cedar': `permit(principal == ?principal, action, resource);` });
    assert.match(refusal(() => compilePolicies(readPolicyFiles([t]))).message, /templates are not supported/);
    const empty = dir({ 'readme.md': '# nothing' });
    assert.match(refusal(() => readPolicyFiles([empty])).message, /no \*\.cedar files/);
    assert.match(
      refusal(() => readPolicyFiles([path.join(empty, 'gone.cedar')])).message,
      /gone\.cedar: cannot read/,
    );
    assert.match(refusal(() => readPolicyFiles([])).message, /no policy files configured/);
  });

  it('an empty policy file loads as a set that permits nothing', () => {
    const d = dir({ 'empty.cedar': '// no policies yet\n' });
    const set = compilePolicies(readPolicyFiles([d]));
    assert.deepEqual(set.policies, {});
    assert.ok(fs.existsSync(set.files[0]!));
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
