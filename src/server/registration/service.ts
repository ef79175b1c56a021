/**
 * RegistrationService over the Store. Each handler validates all input first (so a refused call never
 * reaches the store) and then makes one store transaction, which also writes the call's audit records when
 * the service is audited (audit/in-transaction.ts): the change and its record commit together.
 */
import { randomBytes } from 'node:crypto';
import {
  RegistrationServiceService,
  type RegistrationServiceServer,
} from '../../gen/lanyard/v1/registration';
import { errorFromCode, isLanyardError } from '../../errors';
import type { TrustDomain } from '../../spiffe';
import { generateJoinToken, hashJoinToken } from '../../internal/join-token-secret';
import type { Store } from '../../store/store';
import type { NewEntry } from '../../store/types';
import type { Entry as ProtoEntry } from '../../gen/lanyard/v1/types';
import { auditedTransaction, recordInTransaction } from '../audit/in-transaction';
import { unaryHandler } from '../../internal/grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import type { Logger } from '../../internal/logging';
import { entryToProto } from './mapping';
import {
  invalid,
  validateEntryId,
  validateEntryPatch,
  requireSelectorsUnderParent,
  validateJoinTokenTtl,
  validateListRequest,
  validateNewEntry,
  validateRevision,
  type ValidationContext,
} from './validate';
import { joinTokenEntry } from './token-entry';
import { federationHandlers, requireRelationships } from './federation';
import type { FederationManager } from '../federation/manager';

export const REGISTRATION_SERVICE_NAME = 'lanyard.v1.RegistrationService';
/** More entries than this in one BatchCreateEntry is refused: one transaction should stay short. */
export const MAX_BATCH_SIZE = 1000;

/** What UpdateEntry hands its audit describer besides the response: the entry as it was. */
export interface EntryUpdateDetail {
  before: ProtoEntry;
}

export interface RegistrationDeps {
  store: Store;
  trustDomain: TrustDomain;
  logger: Logger;
  clock?: () => Date;
  /** Told about relationship changes so it fetches at once; absent: relationships are stored only. */
  federation?: FederationManager;
}

export function createRegistrationService(deps: RegistrationDeps): ServiceRegistration {
  const { store, logger } = deps;
  const clock = deps.clock ?? (() => new Date());
  const log = logger.child({ service: REGISTRATION_SERVICE_NAME });
  const ctx = (): ValidationContext => ({ trustDomain: deps.trustDomain, now: clock() });
  const federation = federationHandlers({
    store,
    ctx,
    ...(deps.federation !== undefined && { federation: deps.federation }),
  });

  const implementation: RegistrationServiceServer = {
    createEntry: unaryHandler('CreateEntry', log, async (req) => {
      const input = validateNewEntry('entry', req.entry, ctx());
      return auditedTransaction(store, async (tx) => {
        await requireRelationships(tx, 'entry.federates_with', input.federatesWith);
        return { entry: entryToProto(await tx.createEntry(input)) };
      });
    }),

    batchCreateEntry: unaryHandler('BatchCreateEntry', log, async (req) => {
      if (req.entries.length === 0) throw invalid('entries', 'at least one entry is required');
      if (req.entries.length > MAX_BATCH_SIZE)
        throw invalid('entries', `at most ${MAX_BATCH_SIZE} entries per call`);
      const c = ctx();
      const inputs: NewEntry[] = req.entries.map((e, i) => validateNewEntry(`entries[${i}]`, e, c));
      return auditedTransaction(store, async (tx) => {
        const out = [];
        for (const [i, input] of inputs.entries()) {
          try {
            await requireRelationships(tx, 'federates_with', input.federatesWith);
            out.push(await tx.createEntry(input));
          } catch (e) {
            // Same status and code, but the message says which entry: the whole batch is rolled back.
            if (isLanyardError(e)) throw errorFromCode(e.code, `entries[${i}]: ${e.message}`, { cause: e });
            throw e;
          }
        }
        return { entries: out.map(entryToProto) };
      });
    }),

    getEntry: unaryHandler(
      'GetEntry',
      log,
      async (req) => ({ entry: entryToProto(await store.getEntry(validateEntryId('id', req.id))) }),
      { okLevel: 'debug' },
    ),

    listEntries: unaryHandler(
      'ListEntries',
      log,
      async (req) => {
        const { filter, pageSize, pageToken } = validateListRequest(req);
        const page = await store.listEntries(filter, { pageSize, pageToken });
        return { entries: page.entries.map(entryToProto), nextPageToken: page.nextPageToken };
      },
      { okLevel: 'debug' },
    ),

    updateEntry: unaryHandler('UpdateEntry', log, async (req) => {
      if (!req.entry) throw invalid('entry', 'required');
      const id = validateEntryId('entry.id', req.entry.id);
      const revision = validateRevision('entry.revision', req.entry.revision, true) ?? 0;
      const patch = validateEntryPatch('entry', req.entry, req.updateMask ?? [], ctx());
      return store.transaction(async (tx) => {
        // Read in the same transaction as the write: the audit record's "before" is exactly what was replaced.
        const before = entryToProto(await tx.getEntry(id));
        await requireRelationships(tx, 'entry.federates_with', patch.federatesWith);
        const updated = await tx.updateEntry(id, patch, revision);
        // Checked on the result, inside the transaction: the patch alone cannot tell (selectors cleared on an
        // entry that keeps its parent, or a parent given to a selector-less entry), and throwing rolls back.
        requireSelectorsUnderParent('entry', updated);
        const response = { entry: entryToProto(updated) };
        const detail: EntryUpdateDetail = { before };
        await recordInTransaction(tx, response, detail);
        return response;
      });
    }),

    deleteEntry: unaryHandler('DeleteEntry', log, async (req) => {
      const id = validateEntryId('id', req.id);
      const revision = validateRevision('revision', req.revision, false);
      return auditedTransaction(store, async (tx) => {
        await tx.deleteEntry(id, revision);
        return {};
      });
    }),

    createJoinToken: unaryHandler('CreateJoinToken', log, async (req) => {
      const ttlSeconds = validateJoinTokenTtl('ttl_seconds', req.ttlSeconds);
      const token = generateJoinToken();
      const c = ctx();
      const response = await auditedTransaction(store, async (tx) => {
        // Resolved in the transaction that stores the token: the entry it names exists when the token does.
        const entry = await joinTokenEntry(tx, req, c);
        const record = await tx.createJoinToken({
          id: `jt-${randomBytes(8).toString('hex')}`,
          tokenHash: hashJoinToken(token),
          entryId: entry.id,
          spiffeId: entry.spiffeId,
          expiresAt: new Date(c.now.getTime() + ttlSeconds * 1000),
        });
        return {
          token,
          tokenId: record.id,
          spiffeId: entry.spiffeId,
          entryId: entry.id,
          expiresAt: record.expiresAt,
        };
      });
      log.info(
        {
          tokenId: response.tokenId,
          entryId: response.entryId,
          spiffeId: response.spiffeId,
          expiresAt: response.expiresAt,
        },
        'join token created',
      );
      return response;
    }),

    createFederationRelationship: unaryHandler('CreateFederationRelationship', log, (req) =>
      federation.create(req),
    ),
    getFederationRelationship: unaryHandler('GetFederationRelationship', log, (req) => federation.get(req), {
      okLevel: 'debug',
    }),
    listFederationRelationships: unaryHandler('ListFederationRelationships', log, () => federation.list(), {
      okLevel: 'debug',
    }),
    updateFederationRelationship: unaryHandler('UpdateFederationRelationship', log, (req) =>
      federation.update(req),
    ),
    deleteFederationRelationship: unaryHandler('DeleteFederationRelationship', log, (req) =>
      federation.delete(req),
    ),
  };

  return { name: REGISTRATION_SERVICE_NAME, definition: RegistrationServiceService, implementation };
}
