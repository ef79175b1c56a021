'use strict';
/**
 * What dist/.build-stamp records and how bin/lanyard.js judges it, in one place so that the build
 * (scripts/stamp-dist.ts) and the launcher can never disagree. The rule must be cheap (a few small file
 * reads on every start, no scan of src/): dist/ answers for this package when it was built from the same
 * package version and, in a git checkout, from the commit the checkout is at.
 */
const fs = require('node:fs');
const path = require('node:path');

const STAMP = path.join('dist', '.build-stamp');

function readText(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function packageVersion(root) {
  const text = readText(path.join(root, 'package.json'));
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text).version;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The commit HEAD points at, read from the git files themselves (a `git` process per start would cost more
 * than the scan this replaces). Handles a linked worktree (`.git` is a file naming the gitdir, refs live in
 * the common dir), loose and packed refs, and a detached HEAD. `null` outside a checkout; `undefined` when
 * the checkout's HEAD cannot be resolved (an unborn branch, a ref format this does not read).
 */
function gitHead(root) {
  let gitDir = path.join(root, '.git');
  let st;
  try {
    st = fs.statSync(gitDir);
  } catch {
    return null;
  }
  if (st.isFile()) {
    const m = /^gitdir: (.+)$/m.exec(readText(gitDir) || '');
    if (!m) return undefined;
    gitDir = path.resolve(root, m[1].trim());
  }
  const head = (readText(path.join(gitDir, 'HEAD')) || '').trim();
  if (/^[0-9a-f]{40,64}$/.test(head)) return head;
  if (!head.startsWith('ref: ')) return undefined;
  const ref = head.slice(5).trim();
  const common = readText(path.join(gitDir, 'commondir'));
  const commonDir = common === undefined ? gitDir : path.resolve(gitDir, common.trim());
  for (const dir of [gitDir, commonDir]) {
    const loose = (readText(path.join(dir, ref)) || '').trim();
    if (/^[0-9a-f]{40,64}$/.test(loose)) return loose;
  }
  for (const line of (readText(path.join(commonDir, 'packed-refs')) || '').split('\n')) {
    const [id, name] = line.trim().split(' ');
    if (name === ref && /^[0-9a-f]{40,64}$/.test(id)) return id;
  }
  return undefined;
}

/** The stamp a build of `root` as it is now would write. */
function currentStamp(root) {
  return { version: packageVersion(root), commit: gitHead(root) };
}

function readStamp(root) {
  const text = readText(path.join(root, STAMP));
  if (text === undefined) return undefined;
  try {
    const s = JSON.parse(text);
    return s !== null && typeof s === 'object' ? s : undefined;
  } catch {
    return undefined; // a stamp of an older format: not trusted
  }
}

/**
 * Why dist/ may not answer for `root`, or null when it may. An installed package has no .git (commit null
 * here), so there the version alone decides; a checkout must also be at the commit dist/ was built from.
 * Edits not yet committed are invisible to this rule: LANYARD_FROM_SOURCE=1 (or npm run build) covers them.
 */
function distStaleReason(root) {
  if (!fs.existsSync(path.join(root, 'dist', 'cli', 'main.js'))) return 'dist/ is not built';
  const stamp = readStamp(root);
  if (stamp === undefined) return 'dist/.build-stamp is missing or unreadable (a build failed or is running)';
  const now = currentStamp(root);
  if (stamp.version !== now.version)
    return `dist/ was built for version ${stamp.version}, the package is ${now.version}`;
  if (now.commit !== null && stamp.commit !== now.commit) {
    return `dist/ was built at commit ${stamp.commit}, the checkout is at ${now.commit}`;
  }
  return null;
}

module.exports = { STAMP, currentStamp, readStamp, distStaleReason, gitHead };
