/** `lanyard entry ...`: registration entries, over the server's admin socket. */
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { NotFoundError } from '../../errors';
import { type ListEntriesRequest, SelectorMatch } from '../../gen/lanyard/v1/registration';
import { Entry, type Selector } from '../../gen/lanyard/v1/types';
import { usageError } from '../cli-error';
import type { AdminClient } from '../../server/admin-client';
import {
  parseDuration,
  parseIsoTime,
  parseNonNegativeInt,
  parsePositiveInt,
  parseSpiffeIdFlag,
  readInputFile,
} from '../input';
import { runAction } from '../run-action';
import { entriesTable, entryDetail, entryToJson } from './entry-format';
import { printResult } from '../output';
import {
  type AdminConnectionOptions,
  registerDeleteCommand,
  withAdminClient,
  withAdminOptions,
} from './server-admin';

/** Flags that set entry fields; shared by create and update. */
interface EntryFieldFlags {
  spiffeId?: string;
  selector?: string[];
  parentId?: string;
  ttl?: string;
  scope?: string[];
  maxDelegationDepth?: string;
  delegate?: string[];
  admin?: boolean;
  dnsName?: string[];
  expiresAt?: string;
  canAssertPrincipal?: boolean;
  federatesWith?: string[];
}

const MATCH_MODES: Record<string, SelectorMatch> = {
  exact: SelectorMatch.SELECTOR_MATCH_EXACT,
  subset: SelectorMatch.SELECTOR_MATCH_SUBSET,
  superset: SelectorMatch.SELECTOR_MATCH_SUPERSET,
  any: SelectorMatch.SELECTOR_MATCH_ANY,
};

/** Fields `--clear` can empty, by proto field name. */
const CLEARABLE = [
  'parent_id',
  'allowed_scopes',
  'allowed_delegates',
  'dns_names',
  'expires_at',
  'federates_with',
] as const;

/** Entries fetched per call when listing everything. */
const LIST_ALL_PAGE_SIZE = 500;

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function registerEntryCommands(program: Command): void {
  const entry = program
    .command('entry')
    .description(
      'registration entries: which workloads (selectors) get which SPIFFE ID, and what they may do',
    );

  withAdminOptions(
    fieldFlags(
      entry
        .command('create')
        .description('register a workload (or, with --file, many in one all-or-nothing call)')
        .option('--id <id>', 'entry id (default: a random UUID)')
        .option('--file <file>', 'YAML/JSON list of entries, in the shape `entry list --json` prints'),
    ),
  ).action(
    runAction(async (opts: EntryFieldFlags & AdminConnectionOptions & { id?: string; file?: string }) => {
      if (opts.file) {
        const entries = readEntriesFile(opts.file);
        const res = await withAdminClient(opts, (c) => c.batchCreateEntry({ entries }));
        printResult(
          opts,
          { entries: res.entries.map(entryToJson) },
          () => `created ${res.entries.length} entries\n${entriesTable(res.entries)}`,
        );
        return;
      }
      if (!opts.spiffeId) throw usageError('--spiffe-id is required (or --file)');
      // No --selector is allowed: such an entry is reachable only with a join token bound to it, and the
      // server refuses it under a --parent-id.
      const fields = entryFromFlags(opts);
      const res = await withAdminClient(opts, (c) =>
        c.createEntry({ entry: { ...fields, id: opts.id ?? '' } }),
      );
      printEntry(res.entry, opts);
    }),
  );

  withAdminOptions(
    entry
      .command('list')
      .description('list entries (all pages unless --page-size is given)')
      .option('--spiffe-id-prefix <prefix>', 'only SPIFFE IDs starting with this string')
      .option('--parent-id <id>', 'only entries with this parent')
      .option('--selector <type:value>', 'filter by selector (repeatable)', collect)
      .option('--match <mode>', 'how --selector matches: exact, subset, superset, any', 'superset')
      .option('--page-size <n>', 'fetch one page of this size')
      .option('--page-token <token>', 'continue from a previous page'),
  ).action(
    runAction(
      async (
        opts: AdminConnectionOptions & {
          spiffeIdPrefix?: string;
          parentId?: string;
          selector?: string[];
          match: string;
          pageSize?: string;
          pageToken?: string;
        },
      ) => {
        const match = MATCH_MODES[opts.match];
        if (match === undefined)
          throw usageError(`--match must be one of ${Object.keys(MATCH_MODES).join(', ')}`);
        const filter = {
          spiffeIdPrefix: opts.spiffeIdPrefix ?? '',
          parentId: opts.parentId ?? '',
          bySelectors: opts.selector ? { selectors: opts.selector.map(parseSelector), match } : undefined,
        };
        const single = opts.pageSize !== undefined || opts.pageToken !== undefined;
        const pageSize =
          opts.pageSize !== undefined ? parsePositiveInt(opts.pageSize, '--page-size') : LIST_ALL_PAGE_SIZE;
        const { entries, nextPageToken } = await withAdminClient(opts, (c) =>
          listPages(c, filter, pageSize, opts.pageToken ?? '', single),
        );
        printResult(
          opts,
          { entries: entries.map(entryToJson), nextPageToken },
          () => entriesTable(entries) + (nextPageToken ? `next page: --page-token ${nextPageToken}\n` : ''),
        );
      },
    ),
  );

  withAdminOptions(
    entry
      .command('show')
      .description(
        'show one entry, by entry id or by SPIFFE ID (several entries with that SPIFFE ID are all shown)',
      )
      .argument('<id>', 'entry id, or a SPIFFE ID (spiffe://...)'),
  ).action(
    runAction(async (id: string, opts: AdminConnectionOptions) => {
      if (!id.startsWith('spiffe://')) {
        const res = await withAdminClient(opts, (c) => c.getEntry({ id }));
        printEntry(res.entry, opts);
        return;
      }
      const spiffeId = parseSpiffeIdFlag(id, 'SPIFFE ID').toString();
      const entries = await withAdminClient(opts, (c) =>
        listAll(c, { spiffeIdPrefix: spiffeId, parentId: '', bySelectors: undefined }),
      ).then((all) => all.filter((e) => e.spiffeId === spiffeId));
      if (entries.length === 0) throw new NotFoundError(`no registration entry has SPIFFE ID ${spiffeId}`);
      // One entry prints as `entry show <entry-id>` does; several (other selectors, parents) print in full,
      // one after another, so nothing is hidden by choosing one of them.
      printResult(
        opts,
        entries.length === 1 ? entryToJson(entries[0]!) : { entries: entries.map(entryToJson) },
        () =>
          (entries.length > 1 ? `${entries.length} entries have ${spiffeId}\n\n` : '') +
          entries.map(entryDetail).join('\n'),
      );
    }),
  );

  withAdminOptions(
    fieldFlags(
      entry
        .command('update')
        .description('change the fields given as flags; the others stay as they are')
        .argument('<id>', 'entry id')
        .option('--clear <field>', `empty a field: ${CLEARABLE.join(', ')} (repeatable)`, collect)
        .option('--revision <n>', 'only update at this revision (default: the revision read just before)'),
    ),
  )
    // After fieldFlags: commander defaults a --no-x flag to true unless --x is defined first (which made every
    // update send admin=true); givenBooleans below does not rely on that order either.
    .option('--no-admin', 'revoke the admin flag')
    .option('--no-can-assert-principal', 'revoke the right to assert principals')
    .action(
      runAction(
        async (
          id: string,
          rawOpts: EntryFieldFlags & AdminConnectionOptions & { clear?: string[]; revision?: string },
          cmd: Command,
        ) => {
          const opts = { ...rawOpts, ...givenBooleans(cmd, ['admin', 'canAssertPrincipal']) };
          const fields = entryFromFlags(opts);
          const mask = maskFromFlags(opts);
          for (const c of opts.clear ?? []) {
            if (!(CLEARABLE as readonly string[]).includes(c)) {
              throw usageError(`--clear must name one of ${CLEARABLE.join(', ')}, got "${c}"`);
            }
            mask.push(c);
          }
          if (mask.length === 0)
            throw usageError('nothing to update: give at least one field flag or --clear');
          const res = await withAdminClient(opts, async (c) => {
            // Optimistic concurrency: without --revision, the revision we just read, so a change made by
            // someone else in between is refused rather than overwritten.
            const revision =
              opts.revision !== undefined
                ? parsePositiveInt(opts.revision, '--revision')
                : ((await c.getEntry({ id })).entry?.revision ?? 0);
            return c.updateEntry({ entry: { ...fields, id, revision }, updateMask: mask });
          });
          printEntry(res.entry, opts);
        },
      ),
    );

  registerDeleteCommand(entry, {
    description: 'delete an entry',
    argument: ['<id>', 'entry id'],
    noun: 'entry',
    remove: (c, id, revision) => c.deleteEntry({ id, revision }),
  });
}

type EntryFilter = NonNullable<ListEntriesRequest['filter']>;

/** Every page from `pageToken` on (or only that one page when `single`). */
async function listPages(
  c: AdminClient,
  filter: EntryFilter,
  pageSize: number,
  pageToken: string,
  single: boolean,
): Promise<{ entries: Entry[]; nextPageToken: string }> {
  const all: Entry[] = [];
  let token = pageToken;
  do {
    const page = await c.listEntries({ filter, pageSize, pageToken: token });
    all.push(...page.entries);
    token = page.nextPageToken;
  } while (!single && token !== '');
  return { entries: all, nextPageToken: token };
}

async function listAll(c: AdminClient, filter: EntryFilter): Promise<Entry[]> {
  return (await listPages(c, filter, LIST_ALL_PAGE_SIZE, '', false)).entries;
}

/**
 * The boolean flags the user actually typed: a flag not on the command line is undefined, never a default
 * (commander gives `--no-admin` the default true, which an update would otherwise send as "admin: true").
 */
function givenBooleans(cmd: Command, names: readonly (keyof EntryFieldFlags)[]): Partial<EntryFieldFlags> {
  const out: Partial<EntryFieldFlags> = {};
  for (const name of names) {
    const value: unknown = cmd.getOptionValue(name);
    (out as Record<string, unknown>)[name] =
      cmd.getOptionValueSource(name) === 'cli' && typeof value === 'boolean' ? value : undefined;
  }
  return out;
}

function fieldFlags(cmd: Command): Command {
  return cmd
    .option('--spiffe-id <id>', 'SPIFFE ID to issue, e.g. spiffe://lanyard.local/agents/planner')
    .option(
      '--selector <type:value>',
      'selector the workload must match, e.g. k8s:ns:agents (repeatable; none: join tokens only, no --parent-id)',
      collect,
    )
    .option('--parent-id <id>', 'SPIFFE ID of the node agent that may issue this identity')
    .option('--ttl <duration>', "X.509-SVID lifetime, e.g. 30m (default: the server's)")
    .option('--scope <scope>', 'scope sessions may hold (repeatable)', collect)
    .option('--max-delegation-depth <n>', 'delegation hops allowed below this workload (default 0)')
    .option('--delegate <spiffe-id>', 'SPIFFE ID this workload may hand work to (repeatable)', collect)
    .option('--admin', 'may call the admin APIs over mTLS')
    .option('--dns-name <name>', 'DNS SAN for the SVID (repeatable)', collect)
    .option('--expires-at <time>', 'ISO 8601 time after which the entry no longer matches')
    .option('--can-assert-principal', 'sessions may assert an originating principal without a token')
    .option(
      '--federates-with <trust-domain>',
      "hand this federated trust domain's bundle to the workloads (repeatable; needs a federation relationship)",
      collect,
    );
}

/** The entry fields the flags set; unset flags give proto defaults (the mask says which ones count). */
function entryFromFlags(f: EntryFieldFlags): Entry {
  return Entry.fromPartial({
    spiffeId: f.spiffeId ?? '',
    parentId: f.parentId ?? '',
    selectors: (f.selector ?? []).map(parseSelector),
    x509SvidTtlSeconds: f.ttl !== undefined ? parseDuration(f.ttl, '--ttl') : 0,
    allowedScopes: f.scope ?? [],
    maxDelegationDepth:
      f.maxDelegationDepth !== undefined
        ? parseNonNegativeInt(f.maxDelegationDepth, '--max-delegation-depth')
        : 0,
    allowedDelegates: f.delegate ?? [],
    admin: f.admin ?? false,
    dnsNames: f.dnsName ?? [],
    expiresAt: f.expiresAt !== undefined ? parseIsoTime(f.expiresAt, '--expires-at') : undefined,
    canAssertPrincipal: f.canAssertPrincipal ?? false,
    federatesWith: f.federatesWith ?? [],
  });
}

function maskFromFlags(f: EntryFieldFlags): string[] {
  const given: [unknown, string][] = [
    [f.spiffeId, 'spiffe_id'],
    [f.selector, 'selectors'],
    [f.parentId, 'parent_id'],
    [f.ttl, 'x509_svid_ttl_seconds'],
    [f.scope, 'allowed_scopes'],
    [f.maxDelegationDepth, 'max_delegation_depth'],
    [f.delegate, 'allowed_delegates'],
    [f.admin, 'admin'],
    [f.dnsName, 'dns_names'],
    [f.expiresAt, 'expires_at'],
    [f.canAssertPrincipal, 'can_assert_principal'],
    [f.federatesWith, 'federates_with'],
  ];
  return given.filter(([v]) => v !== undefined).map(([, path]) => path);
}

/** "k8s:ns:agents" -> type "k8s", value "ns:agents": the type ends at the first colon. */
export function parseSelector(s: string): Selector {
  const i = s.indexOf(':');
  if (i <= 0 || i === s.length - 1) throw usageError(`selector must be type:value, got "${s}"`);
  return { type: s.slice(0, i), value: s.slice(i + 1) };
}

const FILE_KEYS = new Set([
  'id',
  'spiffeId',
  'parentId',
  'selectors',
  'x509SvidTtlSeconds',
  'allowedScopes',
  'maxDelegationDepth',
  'allowedDelegates',
  'admin',
  'dnsNames',
  'canAssertPrincipal',
  'federatesWith',
  'expiresAt',
  // output-only, accepted so `entry list --json` output can be fed back in
  'createdAt',
  'updatedAt',
  'revision',
]);

/** Entries from a file: a list, or `{ entries: [...] }` as `entry list --json` prints. */
function readEntriesFile(file: string): Entry[] {
  let doc: unknown;
  try {
    doc = parseYaml(readInputFile(file, 'entries file'));
  } catch (e) {
    if (e instanceof Error && e.name === 'CliError') throw e;
    throw usageError(`${file}: not valid YAML/JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const list: unknown = Array.isArray(doc) ? doc : (doc as { entries?: unknown } | null)?.entries;
  if (!Array.isArray(list) || list.length === 0)
    throw usageError(`${file}: expected a non-empty list of entries`);
  return list.map((item: unknown, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw usageError(`${file}: entries[${i}] is not an object`);
    }
    const unknownKey = Object.keys(item).find((k) => !FILE_KEYS.has(k));
    if (unknownKey) throw usageError(`${file}: entries[${i}].${unknownKey}: unknown field`);
    const raw = item as Record<string, unknown>;
    const selectors = Array.isArray(raw.selectors)
      ? raw.selectors.map((s: unknown) => (typeof s === 'string' ? parseSelector(s) : s))
      : raw.selectors;
    const { createdAt: _c, updatedAt: _u, revision: _r, ...rest } = raw;
    return Entry.fromJSON({ ...rest, selectors });
  });
}

function printEntry(e: Entry | undefined, opts: { json?: boolean }): void {
  if (!e) throw new Error('the server answered without an entry');
  printResult(opts, entryToJson(e), () => entryDetail(e));
}
