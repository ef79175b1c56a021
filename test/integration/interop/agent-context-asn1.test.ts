/**
 * docs/design/agent-context.asn1 is the extension's specification, so an independent ASN.1 compiler must agree
 * with Lanyard's own codec on it. asn1c (Debian's, installed by scripts/install-asn1c.sh) compiles the module
 * to a C decoder; every extension Lanyard writes must decode under the module with its constraints checked and
 * re-encode to the same DER, and values that break a constraint of the module are refused by both sides.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { decodeAgentContext, encodeAgentContext } from '../../../src/x509/agent-context/codec';
import { contextDer } from '../../../src/x509/agent-context/context-der-writer';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../../src/x509/agent-context/oid';
import type { AgentContext } from '../../../src/x509/agent-context/types';
import { agentContext } from '../../x509/agent-context/arbitraries';
import { createCa, plannerChain } from '../../support/pki';
import { REPO_ROOT } from '../../support/paths';

const ROOT = REPO_ROOT;
const MODULE = path.join(ROOT, 'docs', 'design', 'agent-context.asn1');
const INSTALL = path.join(ROOT, 'scripts', 'install-asn1c.sh');
/** Part of the cache key: change it when the build below changes. */
const BUILD_RECIPE = 'asn1c -fcompound-names, check_constraints kept, cc -DPDU=AgentContext';

/**
 * The module compiled by asn1c into its sample converter (decode BER/DER, check constraints, write DER or XER),
 * cached under the system temp dir by the module's hash and the build recipe: a changed module is compiled anew.
 */
function buildDecoder(): string {
  const text = fs.readFileSync(MODULE);
  const dir = path.join(
    os.tmpdir(),
    `lanyard-asn1c-${createHash('sha256').update(BUILD_RECIPE).update(text).digest('hex').slice(0, 16)}`,
  );
  const binary = path.join(dir, 'agent-context');
  if (fs.existsSync(binary)) return binary;
  const install = spawnSync(INSTALL, [], { encoding: 'utf8', timeout: 10 * 60_000 });
  if (install.status !== 0) {
    throw new Error(
      `scripts/install-asn1c.sh failed (exit ${install.status}):\n${install.stdout}${install.stderr}`,
    );
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-asn1c-build-'));
  try {
    execFileSync('asn1c', ['-fcompound-names', MODULE], { cwd: work, stdio: 'pipe' });
    const sources = fs.readdirSync(work).filter((f) => f.endsWith('.c'));
    // asn1c 0.9.28 bug: a type defined by reference to another (Sha256 ::= OCTET STRING (SIZE (32)), Scope)
    // replaces its own constraint check with the base type's the first time it is used, so its SIZE and
    // FROM constraints would go unchecked. Keep the generated check of each such type.
    for (const file of sources) {
      const code = fs.readFileSync(path.join(work, file), 'utf8');
      const fixed = code.replace(/^\s*td->check_constraints = asn_DEF_\w+\.check_constraints;\n/gm, '');
      if (fixed !== code) fs.writeFileSync(path.join(work, file), fixed);
    }
    execFileSync('cc', ['-DPDU=AgentContext', '-I.', '-o', 'agent-context', ...sources, '-w'], {
      cwd: work,
      stdio: 'pipe',
    });
    fs.mkdirSync(dir, { recursive: true });
    // Renamed into place whole, so a concurrent run never executes a half-written binary.
    fs.renameSync(path.join(work, 'agent-context'), `${binary}.${process.pid}`);
    fs.renameSync(`${binary}.${process.pid}`, binary);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return binary;
}

describe('docs/design/agent-context.asn1 against asn1c', function () {
  this.timeout(15 * 60_000);
  let decoder: string;
  let scratch: string;

  before(() => {
    decoder = buildDecoder();
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-asn1-'));
  });
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));

  const write = (name: string, der: Uint8Array): string => {
    const file = path.join(scratch, name);
    fs.writeFileSync(file, der);
    return file;
  };
  /** Decodes each file as AgentContext with constraints checked (-c) and re-encodes it as DER. */
  const roundTrip = (files: string[]) =>
    spawnSync(decoder, ['-iber', '-c', '-oder', ...files], { maxBuffer: 64 * 1024 * 1024 });

  it('decodes the extension of real SVIDs (0, 1 and 2 delegation links) to the same DER', () => {
    const hops = plannerChain(createCa());
    hops.forEach((hop, i) => {
      const ext = hop.cert.extensions.find((e) => e.oid === DEFAULT_AGENT_CONTEXT_OID);
      assert.ok(
        ext !== undefined && !ext.critical,
        `hop ${i}: a non-critical extension under the default OID`,
      );
      const file = write(`hop-${i}.der`, ext.value);
      const r = roundTrip([file]);
      assert.equal(r.status, 0, r.stderr.toString());
      assert.deepEqual(new Uint8Array(r.stdout), ext.value, `hop ${i}: asn1c re-encodes other bytes`);
      const xer = execFileSync(decoder, ['-iber', '-c', '-oxer', file], { encoding: 'utf8' });
      assert.match(xer, new RegExp(`<agentId>${hop.context.agentId}</agentId>`));
      assert.equal((xer.match(/<DelegationLink>/g) ?? []).length, i, `hop ${i}: links decoded`);
      assert.equal((xer.match(/<version>3<\/version>/g) ?? []).length, i, 'binding version 3 in each link');
    });
  });

  it('decodes every context the encoder writes (generated contexts) to the same DER', () => {
    const samples = fc.sample(agentContext, { numRuns: 60, seed: 20261204 });
    const encoded = samples.map((c) => encodeAgentContext(c));
    const files = encoded.map((der, i) => write(`sample-${i}.der`, der));
    const r = roundTrip(files);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.deepEqual(new Uint8Array(r.stdout), new Uint8Array(Buffer.concat(encoded)));
  });

  describe('a value that breaks a constraint of the module is refused by both', () => {
    const base = (): AgentContext => structuredClone(plannerChain(createCa())[1]!.context);
    const cases: [string, (c: AgentContext) => void][] = [
      ['context version 3', (c) => void ((c as { version: number }).version = 3)],
      [
        'five certificates in a parentChain',
        (c) => {
          (c as { version: number }).version = 2;
          c.delegation[0]!.parentChain = Array.from({ length: 5 }, () => new Uint8Array(8));
        },
      ],
      [
        'an empty parentChain',
        (c) => {
          (c as { version: number }).version = 2;
          c.delegation[0]!.parentChain = [];
        },
      ],
      ['empty agentId', (c) => void (c.agentId = '')],
      // Not here: a scope outside "!".."~" (asn1c does not check a permitted alphabet of UTF8String; the
      // codec tests hold Lanyard's side of that rule).
      ['65 scopes', (c) => void (c.scopes = Array.from({ length: 65 }, (_, i) => `s${i}`))],
      ['a 31-byte evidence digest', (c) => void (c.provenance.evidenceSha256 = new Uint8Array(31))],
      ['a 257-byte intent', (c) => void (c.intent = 'x'.repeat(257))],
      ['binding version 2', (c) => void ((c.delegation[0]!.binding as { version?: number }).version = 2)],
      ['a 15-byte nonce', (c) => void (c.delegation[0]!.binding.nonce = new Uint8Array(15))],
      [
        'a 16-byte previous-link digest',
        (c) => void (c.delegation[0]!.binding.prevLinkSha256 = new Uint8Array(16)),
      ],
      [
        '17 delegation links',
        (c) => void (c.delegation = Array.from({ length: 17 }, () => c.delegation[0]!)),
      ],
    ];
    for (const [name, mutate] of cases) {
      it(name, () => {
        const ctx = base();
        mutate(ctx);
        // The DER writer checks nothing (callers validate first), so it writes exactly the broken value.
        const der = writeBroken(ctx);
        assert.throws(() => decodeAgentContext(der), /agent context/i, 'Lanyard decodes it');
        const r = roundTrip([write('broken.der', der)]);
        assert.notEqual(r.status, 0, 'asn1c accepts it');
      });
    }
  });
});

/** contextDer, with the binding version overridable (the writer always writes the current one). */
function writeBroken(ctx: AgentContext): Uint8Array {
  const der = contextDer(ctx);
  const bindingVersion = (ctx.delegation[0]?.binding as { version?: number } | undefined)?.version;
  if (bindingVersion === undefined) return der;
  // INTEGER 3 opens each binding (after its SEQUENCE header): rewrite the first one.
  const at = Buffer.from(der).indexOf(Buffer.from([0x02, 0x01, 0x03, 0x04, 0x20]));
  assert.ok(at > 0);
  const out = Uint8Array.from(der);
  out[at + 2] = bindingVersion;
  return out;
}
