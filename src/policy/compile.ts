/**
 * Turns policy files into one validated policy set with stable policy ids and a content-hash version.
 * Every refusal is a PolicyError whose message starts with the file (and line:column) it is about, because
 * the person reading it has to open that file.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type * as CedarTypes from '@cedar-policy/cedar-wasm/nodejs';
import { cedar } from './cedar';
import { PolicyError, PolicyInvalidError } from '../errors';
import type { PolicyFile } from './policy-files';
import { LANYARD_CEDAR_SCHEMA } from './schema';

/** Hex digits of the SHA-256 kept in a version: 128 bits, unambiguous and short enough for logs and SVIDs. */
const VERSION_HEX_DIGITS = 32;
export const POLICY_VERSION_PREFIX = 'sha256:';

export interface CompiledPolicySet {
  /** `sha256:<32 hex>` over the canonical text of every policy with its id. */
  readonly version: string;
  /** Policy id -> policy text, as Cedar takes a static policy set. */
  readonly policies: Readonly<Record<string, string>>;
  /** Policy id -> the file it came from. */
  readonly origins: Readonly<Record<string, string>>;
  readonly files: readonly string[];
}

interface Located {
  id: string;
  text: string;
  canonical: string;
  file: PolicyFile;
  /** Where the policy's text starts in its file, to turn Cedar's offsets into line:column. */
  offset: number;
}

export function compilePolicies(files: readonly PolicyFile[]): CompiledPolicySet {
  const located: Located[] = [];
  const byId = new Map<string, Located>();
  for (const file of files) {
    for (const policy of splitFile(file)) {
      const clash = byId.get(policy.id);
      if (clash !== undefined) {
        throw invalid(file, policy.offset, `policy id "${policy.id}" is also used in ${clash.file.path}`);
      }
      byId.set(policy.id, policy);
      located.push(policy);
    }
  }
  const policies: Record<string, string> = {};
  const origins: Record<string, string> = {};
  for (const p of located) {
    policies[p.id] = p.text;
    origins[p.id] = p.file.path;
  }
  const answer = cedar().validate({
    schema: LANYARD_CEDAR_SCHEMA,
    policies: { staticPolicies: policies },
    validationSettings: { mode: 'strict' },
  });
  if (answer.type === 'failure') {
    throw new PolicyInvalidError(
      `${files.map((f) => f.path).join(', ')}: ${answer.errors.map(describe).join('; ')}`,
    );
  }
  const first = answer.validationErrors[0];
  if (first !== undefined) {
    const p = byId.get(first.policyId);
    const at = first.error.sourceLocations?.[0]?.start ?? 0;
    const more = answer.validationErrors.length - 1;
    const msg = `policy "${first.policyId}" does not validate against the Lanyard schema: ${describe(first.error)}${more > 0 ? ` (and ${more} more error${more > 1 ? 's' : ''})` : ''}`;
    if (p === undefined) throw new PolicyInvalidError(msg);
    throw invalid(p.file, p.offset + at, msg);
  }
  return {
    version: policyVersion(located),
    policies,
    origins,
    files: files.map((f) => f.path),
  };
}

/**
 * The version changes when what the policies say changes: it hashes each policy's text as Cedar's formatter
 * prints it (so whitespace, line breaks, comments between policies and how they are split into files do not
 * count; a comment inside a policy does) with its id (the reasons a decision names), in id order.
 */
function policyVersion(policies: readonly Located[]): string {
  const h = createHash('sha256');
  for (const p of [...policies].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    h.update(`${p.id}\n${p.canonical}\n\n`);
  }
  return `${POLICY_VERSION_PREFIX}${h.digest('hex').slice(0, VERSION_HEX_DIGITS)}`;
}

function splitFile(file: PolicyFile): Located[] {
  const parts = cedar().policySetTextToParts(file.text);
  if (parts.type === 'failure') {
    const e = parts.errors[0];
    throw invalid(
      file,
      e?.sourceLocations?.[0]?.start ?? 0,
      e === undefined ? 'does not parse' : describe(e),
    );
  }
  if (parts.policy_templates.length > 0) {
    throw invalid(file, 0, 'policy templates are not supported; write static policies');
  }
  const stem = path.basename(file.path, path.extname(file.path));
  let searchFrom = 0;
  return parts.policies.map((text, i): Located => {
    const found = file.text.indexOf(text, searchFrom);
    const offset = found >= 0 ? found : 0;
    if (found >= 0) searchFrom = found + text.length;
    const json = cedar().policyToJson(text);
    if (json.type === 'failure') throw invalid(file, offset, json.errors.map(describe).join('; '));
    // Cedar's formatter, not a JSON round trip: JSON numbers lose Cedar's 64-bit integers.
    const canonical = cedar().formatPolicies({ policyText: text });
    if (canonical.type === 'failure') throw invalid(file, offset, canonical.errors.map(describe).join('; '));
    // `@id("...")` names a policy in decisions and logs; otherwise its file and position do.
    const id = json.json.annotations?.['id'] ?? `${stem}#${i + 1}`;
    return { id, text, canonical: canonical.formatted_policy, file, offset };
  });
}

function invalid(file: PolicyFile, offset: number, message: string): PolicyError {
  const { line, column } = lineColumn(file.text, offset);
  return new PolicyInvalidError(`${file.path}:${line}:${column}: ${message}`);
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split('\n');
  return { line: lines.length, column: (lines[lines.length - 1]?.length ?? 0) + 1 };
}

function describe(e: CedarTypes.DetailedError): string {
  return e.help ? `${e.message} (${e.help})` : e.message;
}
