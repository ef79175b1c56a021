/**
 * `lanyard grant key|create|redeem`: delegation between agents from the command line, in the order it happens.
 *  1. the child generates the key its delegated SVID will hold (`grant key`) and hands the parent its SHA-256;
 *  2. the parent, holding a session SVID, signs a grant for that key locally and registers it (`grant create`);
 *  3. the child redeems it with its own workload SVID and that key (`grant redeem`) and gets the delegated SVID.
 * The grant id is the key's SHA-256, so the child needs nothing from the parent but the go-ahead.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import type { Command } from 'commander';
import { grantFor, redeemGrant } from '../../client/handoff';
import { HandoffKey } from '../../client/handoff-keys';
import { makeDir, writeFileAtomic } from '../../internal/secure-file';
import {
  callServerAs,
  saveObtainedIdentity,
  serverCallCommand,
  type ServerCallFlags,
} from '../agent-identity';
import { usageError } from '../cli-error';
import { isoSeconds } from '../format/svid-text';
import { parseDuration, parseNonNegativeInt, parseSpiffeIdFlag, readInputFile } from '../input';
import { runAction } from '../run-action';
import { printResult } from '../output';

/** The file `grant key` writes, and `grant redeem --key` reads by default from the same directory. */
export const GRANT_KEY_FILE = 'grant_key.pem';

export function registerGrantCommands(program: Command): void {
  const grant = program.command('grant').description('delegate a session to another agent');

  grant
    .command('key')
    .description(
      'the child: generate the key a delegated SVID will hold; prints its SHA-256, which the parent grants to',
    )
    .requiredOption('--out <dir>', `directory for ${GRANT_KEY_FILE} (mode 0600)`)
    .option('--json', 'print JSON instead of text')
    .action(
      runAction((opts: { out: string; json?: boolean }) => {
        const key = HandoffKey.generate();
        makeDir(opts.out, 0o700);
        const file = join(opts.out, GRANT_KEY_FILE);
        writeFileAtomic(file, key.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
        printResult(opts, { keySha256: key.id, file }, () => `${key.id}\n  ${file} (mode 0600)\n`);
      }),
    );

  serverCallCommand(
    grant
      .command('create')
      .description(
        "the parent: sign a grant for the child's key with the session SVID in --identity and register it; prints the grant id",
      ),
    "the parent's session SVID",
    (c) =>
      c
        .requiredOption('--child <spiffe-id>', 'SPIFFE ID of the agent that will redeem')
        .requiredOption('--child-key <sha256>', "the child key's SHA-256 (hex), as `grant key` printed it")
        .requiredOption('--scope <scope...>', "scopes to delegate: a subset of the parent session's")
        .option(
          '--ttl <duration>',
          "lifetime of the delegated session (default and at most: the parent SVID's)",
        )
        .option('--redeem-within <duration>', 'how long the child has to redeem it (at most 60s)', '60s')
        .option(
          '--depth <n>',
          "how many further delegations the child may make below itself (0: none); default: the parent's own bound. More than the parent may allow is refused",
        ),
  ).action(
    runAction(
      async (
        opts: ServerCallFlags & {
          child: string;
          childKey: string;
          scope: string[];
          ttl?: string;
          redeemWithin: string;
          depth?: string;
        },
      ) => {
        parseSpiffeIdFlag(opts.child, '--child');
        if (!/^[0-9a-f]{64}$/i.test(opts.childKey)) {
          throw usageError('--child-key: expected the 64 hex digits `grant key` printed');
        }
        const ttlSeconds = opts.ttl !== undefined ? parseDuration(opts.ttl, '--ttl') : undefined;
        const redeemWithinSeconds = parseDuration(opts.redeemWithin, '--redeem-within');
        const maxDepth = opts.depth !== undefined ? parseNonNegativeInt(opts.depth, '--depth') : undefined;
        const g = await callServerAs(opts, (caller) =>
          grantFor({
            ...caller,
            childId: opts.child,
            childKey: opts.childKey.toLowerCase(),
            scopes: opts.scope,
            redeemWithinSeconds,
            ...(ttlSeconds !== undefined ? { ttlSeconds } : {}),
            ...(maxDepth !== undefined ? { maxDepth } : {}),
          }),
        );
        const r = {
          grantId: g.grantId,
          childId: opts.child,
          scopes: opts.scope,
          redeemBy: isoSeconds(g.redeemBy),
          // What the server holds: --depth, or the parent's own bound when it was not given.
          maxDepth: g.maxDepth,
        };
        const further = r.maxDepth === 0 ? 'no further delegation' : `at most ${r.maxDepth} further hop(s)`;
        printResult(
          opts,
          r,
          () =>
            `granted ${r.grantId}\n  to ${r.childId}, scopes ${r.scopes.join(' ')}; ${further}; redeem by ${r.redeemBy}\n`,
        );
      },
    ),
  );

  serverCallCommand(
    grant
      .command('redeem')
      .description(
        'the child: redeem the grant for its key with its workload SVID; writes the delegated SVID, key (0600) and bundle to --out',
      ),
    "the child's workload SVID",
    (c) =>
      c
        .requiredOption('--key <file>', `the key \`grant key\` wrote (${GRANT_KEY_FILE})`)
        .requiredOption(
          '--out <dir>',
          'directory for the delegated svid.pem, svid_key.pem (0600) and bundle.pem',
        ),
  ).action(
    runAction(async (opts: ServerCallFlags & { key: string; out: string }) => {
      const key = HandoffKey.fromPrivateKey(readKey(opts.key));
      const delegated = await callServerAs(opts, (caller) => redeemGrant({ ...caller, key }));
      await saveObtainedIdentity(delegated, opts.out, opts, (files) => {
        const svid = delegated.getX509Svid();
        const r = {
          sessionId: delegated.sessionId,
          rootSessionId: svid.context?.rootSessionId ?? null,
          spiffeId: svid.id.toString(),
          chain: [...(svid.context?.delegation.map((l) => l.spiffeId) ?? []), svid.id.toString()],
          scopes: svid.context?.scopes ?? [],
          sessionExpiresAt: isoSeconds(delegated.sessionExpiresAt),
          files,
        };
        return {
          json: r,
          text: () =>
            `redeemed: session ${r.sessionId} (root ${r.rootSessionId ?? '?'})\n` +
            `  chain ${r.chain.join(' -> ')}; scopes ${r.scopes.join(' ') || '(none)'}; ends ${r.sessionExpiresAt}\n` +
            `  ${files.svid}\n  ${files.key} (mode 0600)\n  ${files.bundle}\n`,
        };
      });
    }),
  );
}

function readKey(file: string): KeyObject {
  const pem = readInputFile(file, 'key file');
  try {
    return createPrivateKey(pem);
  } catch (e) {
    throw usageError(`${file}: not a private key: ${e instanceof Error ? e.message : String(e)}`);
  }
}
