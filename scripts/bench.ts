/**
 * `npm run bench`: throughput of the hot paths, each beside the raw node:crypto (OpenSSL) rate measured in the
 * same run, plus `openssl speed` when the CLI is present. Figures, not assertions: tests never time anything.
 *
 *   npm run bench               # about 1 s per figure, then end-to-end issuance over gRPC, Cedar, hops, and
 *                               # Renew/s with 1, 2 and 3 servers on one PostgreSQL (scripts/bench-ha.ts)
 *   npm run bench -- --seconds 3
 *   npm run bench -- --ops 64   # calls per client in the gRPC part (scripts/bench-issuance.ts)
 *   npx tsx scripts/bench.ts --verify-only   # the raw verify and the verification figures alone, then exit
 *   npx tsx scripts/bench.ts --verify-only --dist   # also the new leaf over dist/ (npm run build first)
 *   npx tsx scripts/bench.ts --verify-only --pairs 11   # rounds of the new-leaf ratios (default 7)
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { randomBytes, sign, verify } from 'node:crypto';

import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { OID_COMMON_NAME, ParsedCertificate } from '../src/x509/certificate';
import { nameAttributeStrings } from '../src/x509/certificate-der';
import { readBitString, readChildren, readSingleTlv, tlvBytes } from '../src/x509/der';
import { createCsr, parseCsr } from '../src/x509/csr';
import { generateSigningKeyPair } from '../src/x509/keys';
import { issueX509Svid } from '../src/x509/profiles';
import { decodeAgentContext, encodeAgentContext } from '../src/x509/agent-context';
import { DEFAULT_AGENT_CONTEXT_OID } from '../src/x509/agent-context/oid';
import { StaticRevocationList, VerificationCache, verifyX509Svid } from '../src/verify';
import { asIssuer, createPki, issueSvid, plannerChain, TD } from '../test/support/pki';
import { referenceDecode, referenceEncode } from '../test/x509/agent-context/reference-codec';
import { issuanceOptionsFromArgv, runIssuanceBench } from './bench-issuance';
import { hopOptionsFromArgv, runHopBench } from './bench-hop';
import { runPolicyBench } from './bench-policy';
import { haOptionsFromArgv, runHaBench } from './bench-ha';

// bin/build-stamp.js is the launcher's own rule for "dist/ is current": --dist asks it the same question.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { distStaleReason } = require('../bin/build-stamp') as { distStaleReason(root: string): string | null };

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;
/** Leaves made for the new-leaf figure: each is verified once. */
const NEW_LEAVES = Math.max(800, Math.round(2000 * SECONDS));
/**
 * Rounds of the new-leaf figures that read issue 15's ratio (memo off, memo on, the floor): each round makes
 * fresh leaves and measures the three in turns with raw verifies, its lines in a rotating order; the median of the
 * rounds' ratios is printed with their spread (docs/design/performance-log.md, "A new leaf, tenth round").
 */
const pairsArg = process.argv.indexOf('--pairs');
const NEW_LEAF_PAIRS = pairsArg > 0 ? Number(process.argv[pairsArg + 1]) : 7;
if (!Number.isInteger(NEW_LEAF_PAIRS) || NEW_LEAF_PAIRS < 1)
  throw new Error('--pairs takes a whole number >= 1');
/** Only the verification part: for A/B runs of the verifier that must not load a shared machine with the rest. */
const VERIFY_ONLY = process.argv.includes('--verify-only');
/** Also verify the new leaves with the compiled verifier in dist/ (`npm run build` first): what a service runs. */
const WITH_DIST = process.argv.includes('--dist');

interface Figure {
  name: string;
  opsPerSec: number;
  /** Where measured in turns: the process's CPU time per operation (ns), which another process's load moves less. */
  cpuNsPerOp?: number;
}

/** CPU time of this process (all its threads), in nanoseconds. */
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** One figure measured in several rounds, each in turns with its own baseline: the pairs and what they pool to. */
interface Paired {
  /** Every round pooled (operations over total time), for the figure's own line and the ratios to rawVerify. */
  fig: Figure;
  base: Figure;
  /** Each round's figure / its baseline, in round order. */
  ratios: number[];
  /** The same ratios from CPU time rather than the clock. */
  cpuRatios: number[];
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs `fn` repeatedly for SECONDS (after a short warm-up) and returns operations per second. */
function measure(name: string, fn: () => void): Figure {
  const warmUntil = process.hrtime.bigint() + 100_000_000n;
  while (process.hrtime.bigint() < warmUntil) fn();
  const budget = BigInt(Math.round(SECONDS * 1e9));
  const start = process.hrtime.bigint();
  let ops = 0;
  let now = start;
  while (now - start < budget) {
    for (let i = 0; i < 8; i++) fn();
    ops += 8;
    now = process.hrtime.bigint();
  }
  const fig = { name, opsPerSec: ops / (Number(now - start) / 1e9) };
  process.stdout.write(`  ${name.padEnd(58)} ${fmt(fig.opsPerSec).padStart(10)} /s\n`);
  return fig;
}

/**
 * Runs `fn` once on each input (the first eighth is warm-up), for figures where no input may be seen twice (the
 * count is fixed rather than the time: each input has to be made beforehand), in turns with batches of as many
 * calls of `baseline`, so that both figures see the same moments of a loaded machine; their ratio is the figure to
 * read.
 */
function measureEachBeside<T>(
  name: string,
  inputs: readonly T[],
  fn: (input: T) => void,
  baselineName: string,
  baseline: () => void,
  afterName?: string,
  quiet = false,
): [Figure, Figure, Figure?] {
  const warm = Math.floor(inputs.length / 8);
  for (let i = 0; i < warm; i++) {
    fn(inputs[i]!);
    baseline();
  }
  const batch = 50;
  let fnNs = 0;
  let baseNs = 0;
  let afterNs = 0;
  let fnCpu = 0;
  let baseCpu = 0;
  let turn = 0;
  for (let from = warm; from < inputs.length; from += batch, turn++) {
    const to = Math.min(inputs.length, from + batch);
    // Which side goes first alternates, so neither always runs right after the other.
    for (let side = 0; side < 2; side++) {
      const own = side === turn % 2;
      if (own && afterName !== undefined) {
        // The same baseline call, timed alone right after each input's call: what the surrounding work does to
        // it. The input's call is timed apart, but its figure is not the one to read: with a baseline call just
        // before each input, it no longer runs after its own kind only.
        for (let i = from; i < to; i++) {
          const t0 = process.hrtime.bigint();
          fn(inputs[i]!);
          const t1 = process.hrtime.bigint();
          baseline();
          fnNs += Number(t1 - t0);
          afterNs += Number(process.hrtime.bigint() - t1);
        }
        continue;
      }
      const cpu = cpuNs();
      const start = process.hrtime.bigint();
      if (own) for (let i = from; i < to; i++) fn(inputs[i]!);
      else for (let i = from; i < to; i++) baseline();
      const ns = Number(process.hrtime.bigint() - start);
      const cpuUsed = cpuNs() - cpu;
      if (own) {
        fnNs += ns;
        fnCpu += cpuUsed;
      } else {
        baseNs += ns;
        baseCpu += cpuUsed;
      }
    }
  }
  const n = inputs.length - warm;
  const figures: [Figure, Figure, Figure?] = [
    { name, opsPerSec: n / (fnNs / 1e9), cpuNsPerOp: fnCpu / n },
    { name: baselineName, opsPerSec: n / (baseNs / 1e9), cpuNsPerOp: baseCpu / n },
  ];
  if (afterName !== undefined) figures.push({ name: afterName, opsPerSec: n / (afterNs / 1e9) });
  if (quiet) return figures;
  for (const fig of figures) {
    if (fig === undefined) continue;
    process.stdout.write(`  ${fig.name.padEnd(58)} ${fmt(fig.opsPerSec).padStart(10)} /s\n`);
  }
  return figures;
}

/**
 * measureEachBeside for several figures over the same fresh inputs, `rounds` times: each round makes its inputs
 * (every figure's call sees each once; the figures' verifiers keep nothing from one another) and measures every
 * figure in turns with `baseline`, the figures' order rotating from round to round, so that none always runs
 * first or after the same one. A round's ratio (figure / its baseline in turns) is one pair; a loaded machine
 * moves single pairs, so the median and the spread of the pairs are printed beside the pooled rates.
 */
function measurePairs<T>(
  rounds: number,
  makeInputs: () => readonly T[],
  figures: readonly { name: string; fn: (input: T) => void; baselineName: string }[],
  baseline: () => void,
): Paired[] {
  const ns = figures.map(() => ({
    fig: 0,
    base: 0,
    ops: 0,
    ratios: [] as number[],
    cpuRatios: [] as number[],
  }));
  for (let r = 0; r < rounds; r++) {
    const inputs = makeInputs();
    for (let k = 0; k < figures.length; k++) {
      const j = (r + k) % figures.length;
      const { name, fn, baselineName } = figures[j]!;
      const [fig, base] = measureEachBeside(name, inputs, fn, baselineName, baseline, undefined, true);
      const n = inputs.length - Math.floor(inputs.length / 8);
      ns[j]!.fig += n / fig.opsPerSec;
      ns[j]!.base += n / base.opsPerSec;
      ns[j]!.ops += n;
      ns[j]!.ratios.push(fig.opsPerSec / base.opsPerSec);
      ns[j]!.cpuRatios.push(base.cpuNsPerOp! / fig.cpuNsPerOp!);
    }
  }
  return figures.map(({ name, baselineName }, j) => {
    const t = ns[j]!;
    const paired: Paired = {
      fig: { name, opsPerSec: t.ops / t.fig },
      base: { name: baselineName, opsPerSec: t.ops / t.base },
      ratios: t.ratios,
      cpuRatios: t.cpuRatios,
    };
    for (const f of [paired.fig, paired.base]) {
      process.stdout.write(`  ${f.name.padEnd(58)} ${fmt(f.opsPerSec).padStart(10)} /s\n`);
    }
    return paired;
  });
}

/**
 * The new-leaf figure and the parse + signature floor, each in turns with raw verifies, over dist/ (the bench's
 * own leaves, as DER: the compiled verifier gets its own bundle and cache, none of the tsx objects).
 */
function compiledNewLeaf(
  rootDer: Uint8Array,
  interDer: Uint8Array,
  newLeaves: () => Uint8Array[],
  rawVerifyOnce: () => void,
): [Figure, Figure, string][] {
  const stale = distStaleReason(path.join(__dirname, '..'));
  if (stale !== null) throw new Error(`--dist: dist/ is not current (${stale}); run npm run build`);
  /* eslint-disable @typescript-eslint/no-require-imports */
  const dist = {
    ...(require('../dist/bundle') as typeof import('../src/bundle')),
    ...(require('../dist/spiffe') as typeof import('../src/spiffe')),
    ...(require('../dist/verify') as typeof import('../src/verify')),
    ...(require('../dist/x509/certificate') as typeof import('../src/x509/certificate')),
  };
  /* eslint-enable @typescript-eslint/no-require-imports */
  const bundle = dist.X509Bundle.fromDer(dist.TrustDomain.parse(TD), [rootDer]);
  const cache = new dist.VerificationCache({ chains: false });
  const inter = dist.ParsedCertificate.fromDer(interDer);
  const leaf = measureEachBeside(
    'compiled (dist/) new leaf, known intermediate + links',
    newLeaves(),
    (der) => {
      if (dist.verifyX509Svid([der, interDer], bundle, { cache }).context === undefined) {
        throw new Error('new leaf lost its context');
      }
    },
    'node:crypto ECDSA P-256 verify, in turns with them',
    rawVerifyOnce,
  );
  const floor = measureEachBeside(
    'compiled (dist/) parse + the leaf signature only, no rules',
    newLeaves(),
    (der) => {
      if (!dist.ParsedCertificate.fromDer(der).isSignedBy(inter)) throw new Error('leaf signature failed');
    },
    'node:crypto ECDSA P-256 verify, in turns with them',
    rawVerifyOnce,
  );
  return [
    [leaf[0], leaf[1], 'compiled: new leaf / raw verify in turns'],
    [floor[0], floor[1], 'compiled: parse + signature only / raw verify in turns'],
  ];
}

/** A certificate's tbsCertificate and signature value: what its issuer's key verifies. */
function signedParts(der: Uint8Array): { tbs: Uint8Array; signature: Uint8Array } {
  const parts = readChildren(der, readSingleTlv(der));
  return { tbs: tlvBytes(der, parts[0]!), signature: readBitString(der, parts[2]!).bytes };
}

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

function opensslSpeed(): { sign: number; verify: number } | undefined {
  try {
    const out = execFileSync(
      'openssl',
      ['speed', '-seconds', String(Math.max(1, Math.round(SECONDS))), 'ecdsap256'],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    // "256 bits ecdsa (nistp256)   0.0000s   0.0001s  41234.5  12345.6"
    const m = /256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)/.exec(out);
    return m ? { sign: Number(m[1]), verify: Number(m[2]) } : undefined;
  } catch {
    return undefined;
  }
}

/** Returns the raw sign and in-process issuance rates, for the gRPC part's ratios. */
function main(): { rawSignPerSec: number; inProcessIssuePerSec: number } {
  process.stdout.write(
    `Lanyard benchmark (node ${process.version}, ${SECONDS}s per figure, single thread)\n\n`,
  );

  // --- PKI: root -> intermediate -> 3-hop delegation chain (planner -> tool-runner -> retrieval)
  const pki = createPki(TD);
  const inter = pki.intermediate.cert;
  const hops = plannerChain(pki);
  const leaf = hops[2]!.cert;
  const chainDer = [leaf.der, inter.der];
  const bundle = pki.bundle;
  const plainLeaf = issueSvid(pki, `spiffe://${TD}/plain`).cert;

  // --- baseline: raw OpenSSL through node:crypto. The verify is exactly the check a leaf's signature gets in the
  // verifier (ParsedCertificate.isSignedBy): the leaf's tbsCertificate (~1.8 KB) and DER signature under the
  // intermediate's key as imported from its SPKI. It once verified a 400-byte message under a generated key, a
  // percent or two cheaper (docs/design/performance-log.md, "A new leaf: the signature check in place").
  const p256 = generateSigningKeyPair('ec-p256');
  const message = randomBytes(400);
  const signed = signedParts(leaf.der);
  const interKey = inter.publicKey;
  const rawVerifyOnce = (): void => {
    if (!verify('sha256', signed.tbs, interKey, signed.signature)) throw new Error('baseline verify failed');
  };
  process.stdout.write('Baseline\n');
  const rawSign = VERIFY_ONLY
    ? { name: 'sign', opsPerSec: NaN }
    : measure('node:crypto ECDSA P-256 sign', () => sign('sha256', message, p256.privateKey));
  const rawVerify = measure('node:crypto ECDSA P-256 verify (a leaf signature)', rawVerifyOnce);
  const speed = VERIFY_ONLY ? undefined : opensslSpeed();
  if (speed) {
    process.stdout.write(
      `  ${'openssl speed ecdsap256 sign'.padEnd(58)} ${fmt(speed.sign).padStart(10)} /s\n`,
    );
    process.stdout.write(
      `  ${'openssl speed ecdsap256 verify'.padEnd(58)} ${fmt(speed.verify).padStart(10)} /s\n`,
    );
  }

  process.stdout.write('\nVerification (leaf with a 2-link delegation chain, via an intermediate)\n');
  const cold = measure('verifyX509Svid cold (no cache: parse + 3 sigs + 2 links)', () => {
    verifyX509Svid(chainDer, bundle, { cache: null });
  });
  // The per-fact caches alone (CA signatures, links, parsed certificates): what a chain not seen before pays.
  const factCache = new VerificationCache({ chains: false });
  verifyX509Svid(chainDer, bundle, { cache: factCache });
  const factsOnly = measure('verifyX509Svid same chain, chain memo off (per-fact cache)', () => {
    verifyX509Svid(chainDer, bundle, { cache: factCache });
  });
  const warmCache = new VerificationCache();
  verifyX509Svid(chainDer, bundle, { cache: warmCache });
  const cached = measure('verifyX509Svid same chain again (chain memo)', () => {
    verifyX509Svid(chainDer, bundle, { cache: warmCache });
  });
  // The same, asking a revocation list (1,000 ended sessions, none of this chain's) on every call, as hops do.
  const revoked = new StaticRevocationList({
    sessions: Array.from({ length: 1000 }, (_, i) => `ended-${i}`),
  });
  const cachedRevocation = measure('verifyX509Svid same chain again + revocation check', () => {
    verifyX509Svid(chainDer, bundle, { cache: warmCache, revocation: revoked });
  });
  // A renewal: a new certificate for the same key and context under the known intermediate and links. Every
  // call must see bytes it has never seen: cycling through a few leaves (as this figure once did) measured the
  // per-fact caches answering for leaves already verified, not a new leaf.
  const newLeaves = (dnsName?: (i: number) => string): Uint8Array[] =>
    Array.from(
      { length: NEW_LEAVES },
      (_, i) =>
        issueX509Svid({
          spiffeId: hops[2]!.id,
          publicKey: hops[2]!.key.publicKey,
          issuer: asIssuer(pki.intermediate),
          ttlSeconds: 600,
          agentContextDer: encodeAgentContext(hops[2]!.context),
          ...(dnsName !== undefined && { dnsNames: [dnsName(i)] }),
        }).cert.der,
    );
  // These leaves are renewals: the same key and context, so the same extensions, under the same intermediate.
  // From the second one on the verifier recognises them (src/verify/renewals.ts); the figure of issue 15, with
  // the chain memo off (the per-fact cache) and on (the default cache, what users get: a new chain is also
  // offered to the memo), and beside them the floor: each fresh leaf parsed and its one signature checked,
  // nothing else (no path or SVID rule, no lookup, no context, no cache). No verifier of a new leaf can cost less;
  // its ratio is the ceiling of the new-leaf ratio (docs/design/performance-log.md, "A new leaf: what surrounds
  // the signature"). The three read the same fresh leaves in each of NEW_LEAF_PAIRS rounds (measurePairs).
  const memoCache = new VerificationCache();
  verifyX509Svid(chainDer, bundle, { cache: memoCache });
  process.stdout.write(
    `  (${NEW_LEAF_PAIRS} rounds of ${NEW_LEAVES} fresh leaves, each line in turns with raw verifies)\n`,
  );
  const [renewedPairs, memoPairs, floorPairs] = measurePairs(
    NEW_LEAF_PAIRS,
    () => newLeaves(),
    [
      {
        name: 'verifyX509Svid new leaf, known intermediate + links',
        fn: (der: Uint8Array) => {
          const svid = verifyX509Svid([der, inter.der], bundle, { cache: factCache });
          if (svid.context === undefined) throw new Error('new leaf lost its context');
        },
        baselineName: 'node:crypto ECDSA P-256 verify, in turns with the new leaves',
      },
      {
        name: 'verifyX509Svid new leaf, chain memo on',
        fn: (der: Uint8Array) => {
          const svid = verifyX509Svid([der, inter.der], bundle, { cache: memoCache });
          if (svid.context === undefined) throw new Error('new leaf lost its context');
        },
        baselineName: 'node:crypto ECDSA P-256 verify, in turns with them',
      },
      {
        name: 'parse + the leaf signature only, no rules (a floor)',
        fn: (der: Uint8Array) => {
          if (!ParsedCertificate.fromDer(der).isSignedBy(inter)) throw new Error('leaf signature failed');
        },
        baselineName: 'node:crypto ECDSA P-256 verify, in turns with them',
      },
    ],
    rawVerifyOnce,
  );
  const renewedLeaf = renewedPairs!.fig;
  // A new leaf whose extensions were never seen: each carries a DNS SAN of its own besides the same SPIFFE ID, key
  // and context, so none is the renewal of another and each is parsed and checked whole (and pays the lookup).
  const [unseenLeaf, rawBesideUnseen] = measureEachBeside(
    'verifyX509Svid new leaf, extensions never seen',
    newLeaves((i) => `n${i}.bench.example.org`),
    (der) => {
      const svid = verifyX509Svid([der, inter.der], bundle, { cache: factCache });
      if (svid.context === undefined) throw new Error('new leaf lost its context');
    },
    'node:crypto ECDSA P-256 verify, in turns with them',
    rawVerifyOnce,
  );
  // A renewal with a new key: a leaf without context (a delegated leaf's context binds its key) for one SPIFFE ID,
  // each with a key of its own and so a subject key identifier of its own, derived from it as issuance writes it.
  // Recognised from the second one on (CertificateTemplate: every byte compared but that identifier, which must be
  // the new key's); the keys are made beforehand.
  const rotatingId = `spiffe://${TD}/rotating`;
  const rotatingLeaves = Array.from(
    { length: NEW_LEAVES },
    () =>
      issueX509Svid({
        spiffeId: rotatingId,
        publicKey: generateSigningKeyPair('ec-p256').publicKey,
        issuer: asIssuer(pki.intermediate),
        ttlSeconds: 600,
      }).cert.der,
  );
  const [rotatedLeaf, rawBesideRotated] = measureEachBeside(
    'verifyX509Svid new leaf, renewal with a new key',
    rotatingLeaves,
    (der) => {
      verifyX509Svid([der, inter.der], bundle, { cache: factCache });
    },
    'node:crypto ECDSA P-256 verify, in turns with them',
    rawVerifyOnce,
  );
  // Under tsx (this script) every imported binding is a getter call; the compiled output a service runs has none.
  // The same two figures over dist/, when asked for ("A new leaf: what surrounds the signature").
  const distFigures = WITH_DIST
    ? compiledNewLeaf(pki.root.cert.der, inter.der, newLeaves, rawVerifyOnce)
    : [];
  // The leaf's signature check costs more in place than in a loop. The same raw verify, timed alone right after
  // each new leaf's verification, shows how much of that is the surrounding work rather than the call itself.
  const [, rawBesideAfter, rawAfter] = measureEachBeside(
    'verifyX509Svid new leaf, each followed by a raw verify',
    newLeaves(),
    (der) => {
      verifyX509Svid([der, inter.der], bundle, { cache: factCache });
    },
    'node:crypto ECDSA P-256 verify, in turns (these leaves)',
    rawVerifyOnce,
    'node:crypto ECDSA P-256 verify, right after each new leaf',
  );
  const plainCache = new VerificationCache();
  const plainChain = [plainLeaf.der, inter.der];
  verifyX509Svid(plainChain, bundle, { cache: plainCache });
  const cachedPlain = measure('verifyX509Svid cached, leaf without agent context', () => {
    verifyX509Svid(plainChain, bundle, { cache: plainCache });
  });
  const parse = measure('ParsedCertificate.fromDer (leaf with context)', () => {
    ParsedCertificate.fromDer(leaf.der);
  });
  const ctxExt = leaf.extensions.find((e) => e.oid === DEFAULT_AGENT_CONTEXT_OID)!;
  const decode = measure('decodeAgentContext (2 links)', () => {
    decodeAgentContext(ctxExt.value);
  });

  const ratio = (a: Figure, b: Figure, text: string): void => {
    process.stdout.write(`  ${text.padEnd(58)} ${(a.opsPerSec / b.opsPerSec).toFixed(2).padStart(10)}\n`);
  };
  // A ratio read in pairs: the median of the rounds' ratios, then their spread and what all rounds pool to.
  const pairs = (p: Paired, text: string): void => {
    const r = p.ratios;
    process.stdout.write(`  ${text.padEnd(58)} ${median(r).toFixed(2).padStart(10)}\n`);
    const spread = `${Math.min(...r).toFixed(2)}-${Math.max(...r).toFixed(2)}`;
    const pooled = (p.fig.opsPerSec / p.base.opsPerSec).toFixed(2);
    process.stdout.write(
      `  ${`    median of ${r.length} pairs; range ${spread}, pooled ${pooled}`.padEnd(58)} ${r.map((x) => x.toFixed(2)).join(' ')}\n`,
    );
    // The same pairs read from the process's CPU time: time the process spent waiting for a core (another
    // process's work on a loaded machine) is left out, while its own threads' work (garbage collection) counts.
    const c = p.cpuRatios;
    process.stdout.write(
      `  ${`    from CPU time: median ${median(c).toFixed(2)}, range ${Math.min(...c).toFixed(2)}-${Math.max(...c).toFixed(2)}`.padEnd(58)} ${c.map((x) => x.toFixed(2)).join(' ')}\n`,
    );
  };
  const verificationRatios = (): void => {
    ratio(cached, rawVerify, 'same chain again (memo) / raw P-256 verify');
    ratio(cachedRevocation, rawVerify, 'same chain again + revocation / raw P-256 verify');
    ratio(factsOnly, rawVerify, 'same chain, memo off / raw P-256 verify');
    ratio(renewedLeaf, rawVerify, 'new leaf under known CA + links / raw P-256 verify');
    pairs(renewedPairs!, '  the same, against raw verifies in turns with it');
    pairs(memoPairs!, '  with the chain memo on, against raw verifies in turns');
    ratio(unseenLeaf, rawBesideUnseen, 'new leaf, extensions never seen / raw verify in turns');
    ratio(rotatedLeaf, rawBesideRotated, 'new leaf, renewal with a new key / raw verify in turns');
    pairs(floorPairs!, 'parse + signature only, no rules / raw verify in turns');
    process.stdout.write(
      `  ${'  new leaf / parse + signature only (both in turns)'.padEnd(58)} ${(median(renewedPairs!.ratios) / median(floorPairs!.ratios)).toFixed(2).padStart(10)}\n`,
    );
    for (const [fig, base, text] of distFigures) ratio(fig, base, text);
    ratio(rawBesideAfter, rawAfter!, 'raw verify right after a new leaf, cost / in turns');
    ratio(cachedPlain, rawVerify, 'cached verify (no context) / raw P-256 verify');
    ratio(cold, rawVerify, 'cold verify / raw P-256 verify');
    ratio(parse, rawVerify, 'certificate parse / raw P-256 verify');
    ratio(decode, rawVerify, 'context decode / raw P-256 verify');
  };
  if (VERIFY_ONLY) {
    process.stdout.write('\nRatios (same run)\n');
    verificationRatios();
    return { rawSignPerSec: NaN, inProcessIssuePerSec: NaN };
  }

  // The codec alone, direct DER beside the asn1-schema reference it replaced (test/x509/agent-context/reference-codec.ts).
  process.stdout.write('\nAgent-context codec (direct DER vs the asn1-schema reference)\n');
  const ctx0 = hops[0]!.context;
  const ctx2 = hops[2]!.context;
  const der0 = encodeAgentContext(ctx0);
  const der2 = encodeAgentContext(ctx2);
  const codec = {
    encode2: measure('encodeAgentContext (2 links)', () => encodeAgentContext(ctx2)),
    encode2Ref: measure('  asn1-schema reference encode (2 links)', () => referenceEncode(ctx2)),
    decode0: measure('decodeAgentContext (no links)', () => decodeAgentContext(der0)),
    decode0Ref: measure('  asn1-schema reference decode (no links)', () => referenceDecode(der0)),
    decode2Ref: measure('  asn1-schema reference decode (2 links)', () => referenceDecode(der2)),
  };

  process.stdout.write('\nIssuance\n');
  const ctxDer = encodeAgentContext(hops[0]!.context);
  const workload = generateSigningKeyPair('ec-p256');
  const csrDer = createCsr(workload.privateKey).der;
  const issuer = asIssuer(pki.intermediate);
  const mint = measure('issueX509Svid (P-256, with agent context)', () => {
    issueX509Svid({
      spiffeId: `spiffe://${TD}/agent`,
      publicKey: workload.publicKey,
      issuer,
      ttlSeconds: 3600,
      agentContextDer: ctxDer,
    });
  });
  const mintFromCsr = measure('parseCsr + issueX509Svid (what Attest/Renew do)', () => {
    const csr = parseCsr(csrDer);
    issueX509Svid({ spiffeId: `spiffe://${TD}/agent`, publicKey: csr.publicKey, issuer, ttlSeconds: 3600 });
  });

  // What x509pop (subject:cn selectors) and the issuer name of every signed certificate read: formerly through a
  // full schema parse of the certificate, now from the subject's bytes that the fast parser already holds.
  process.stdout.write('\nSubject names (x509pop selectors; the issuer field of what a CA signs)\n');
  const slowNames = measure('subject CNs via a full asn1-schema certificate parse (before)', () => {
    const subject = AsnConvert.parse(inter.der, Certificate).tbsCertificate.subject;
    for (const rdn of subject) for (const atv of rdn) if (atv.type === OID_COMMON_NAME) atv.value.toString();
  });
  const fastNames = measure('subject CNs from subjectDer (nameAttributeStrings)', () => {
    nameAttributeStrings(inter.subjectDer, OID_COMMON_NAME);
  });

  process.stdout.write('\nRatios (same run)\n');
  verificationRatios();
  ratio(codec.encode2, codec.encode2Ref, 'context encode (2 links): direct DER / asn1-schema');
  ratio(codec.decode0, codec.decode0Ref, 'context decode (no links): direct DER / asn1-schema');
  ratio(decode, codec.decode2Ref, 'context decode (2 links): direct DER / asn1-schema');
  ratio(mint, rawSign, 'mint / raw P-256 sign');
  ratio(mintFromCsr, rawSign, 'CSR -> SVID / raw P-256 sign');
  ratio(fastNames, slowNames, 'subject CNs: subjectDer / full certificate parse');
  if (speed) {
    process.stdout.write(
      `  ${'raw node:crypto verify / openssl speed verify'.padEnd(58)} ${(rawVerify.opsPerSec / speed.verify).toFixed(2).padStart(10)}\n`,
    );
  }
  return { rawSignPerSec: rawSign.opsPerSec, inProcessIssuePerSec: mintFromCsr.opsPerSec };
}

const { rawSignPerSec, inProcessIssuePerSec } = main();
// End to end: Attest and Renew against a real server on loopback, beside the raw sign rate measured above.
if (!VERIFY_ONLY)
  runIssuanceBench({ ...issuanceOptionsFromArgv(), rawSignPerSec, inProcessIssuePerSec })
    // Cedar at a hop and at issuance, beside the authorizers and the cached verify of its own run.
    .then(() => runPolicyBench(SECONDS))
    // The cost of Lanyard at a hop: mTLS handshakes and express requests, each beside its plain baseline.
    .then(() => runHopBench(hopOptionsFromArgv()))
    // Renew/s with 1, 2 and 3 servers on one PostgreSQL (a throwaway cluster; skipped when it cannot be installed).
    .then(() => runHaBench({ ...haOptionsFromArgv(), rawSignPerSec }))
    .catch((e: unknown) => {
      process.stderr.write(`bench: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exitCode = 1;
    });
