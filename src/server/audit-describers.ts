/**
 * What each audited method records. Allowed issuance reads everything from the SVID it issued (subject,
 * serial, agent, sessions, principal, scopes, policy version, parent link); refusals carry the caller's own
 * verified SVID fields (wrapper) plus what was asked for. Never a token, key, CSR or binding body.
 */
import type { AuditEvent, AuditEventType } from '../audit/record';
import type {
  CreateJoinTokenRequest,
  CreateJoinTokenResponse,
  DeleteEntryRequest,
  UpdateEntryRequest,
} from '../gen/lanyard/v1/registration';
import { caRotationStepToJSON, type RotateCaRequest, type RotateCaResponse } from '../gen/lanyard/v1/admin';
import type { RenewResponse } from '../gen/lanyard/v1/attestation';
import type { BatchNewX509SvidResponse, NewJwtSvidRequest, NewJwtSvidResponse } from '../gen/lanyard/v1/node';
import type {
  CreateGrantRequest,
  CreateGrantResponse,
  EndSessionRequest,
  EndSessionResponse,
  RedeemGrantRequest,
  RedeemGrantResponse,
  RevokeSvidRequest,
  RevokeSvidResponse,
  StartSessionResponse,
} from '../gen/lanyard/v1/session';
import type { Entry, X509Svid } from '../gen/lanyard/v1/types';
import type { Store } from '../store/store';
import { decodeDelegationBinding } from '../x509/agent-context';
import type { AuditCaller, MethodAudit } from './audit/audited-service';
import { signedLeafFields, svidFields } from './audit/svid-fields';
import { issuedLeafOf } from './issuance/workload-svid';
import { entryChanges } from './registration/entry-changes';
import type { EntryUpdateDetail } from './registration/service';

const leafOf = (svid: X509Svid | undefined): Uint8Array | undefined =>
  svid?.certChain[0] !== undefined ? new Uint8Array(svid.certChain[0]) : undefined;

/** The caller's own identifiers, without the SVID fields that describe the thing acted on. */
const actorOnly = (c: AuditCaller): Partial<AuditEvent> => (c.actor !== undefined ? { actor: c.actor } : {});

/**
 * An admin caller as its records name it: the SPIFFE ID and the serial of the SVID it called with (`serial`
 * is then the caller's certificate, the only one such a record concerns), or `admin-socket`.
 */
export const adminCaller = (c: AuditCaller): Partial<AuditEvent> => ({
  ...actorOnly(c),
  ...(c.serial !== undefined && { serial: c.serial }),
});

/** An allow record of `event`: the caller as `who` names it, then what the call acted on. */
function allowRecord(
  event: AuditEventType,
  who: Partial<AuditEvent>,
  fields: Partial<AuditEvent>,
): AuditEvent {
  return { event, decision: 'allow', ...who, ...fields };
}

function issued(event: AuditEventType, svid: X509Svid | undefined, caller: AuditCaller): AuditEvent {
  // The fields of the leaf this server just signed are known without a parse (svidToProto remembers them by
  // its Buffer).
  const signed = issuedLeafOf(svid?.certChain[0]);
  return allowRecord(
    event,
    actorOnly(caller),
    signed !== undefined ? signedLeafFields(signed) : svidFields(leafOf(svid)),
  );
}

/** The child SPIFFE ID and scopes a grant binding names; nothing when it does not decode. */
function bindingFields(binding: Uint8Array): Partial<AuditEvent> {
  try {
    const b = decodeDelegationBinding(binding);
    return { subject: b.childId, scopes: [...b.scopes] };
  } catch {
    return {};
  }
}

export function sessionMethods(store: Store): Record<string, MethodAudit> {
  return {
    startSession: {
      event: 'session.start',
      inTransaction: true,
      allowed: (_req: never, res: StartSessionResponse, caller) => [
        issued('session.start', res.svid, caller),
      ],
    },
    createGrant: {
      event: 'grant.create',
      inTransaction: true,
      allowed: (req: CreateGrantRequest, res: CreateGrantResponse, caller) => [
        {
          ...caller,
          event: 'grant.create',
          decision: 'allow',
          ...bindingFields(req.binding),
          // The depth bound is the server's to hold (the binding has no field for it): the trail keeps it too.
          reason: `grant ${res.grantId}${req.maxDepth !== undefined ? `; max depth ${req.maxDepth}` : ''}`,
        },
      ],
      denied: (req: CreateGrantRequest) => bindingFields(req.binding),
    },
    redeemGrant: {
      event: 'grant.redeem',
      inTransaction: true,
      allowed: (req: RedeemGrantRequest, res: RedeemGrantResponse, caller) => [
        { ...issued('grant.redeem', res.svid, caller), reason: `grant ${req.grantId}` },
      ],
      denied: (req: RedeemGrantRequest) => ({ reason: `grant ${req.grantId}` }),
    },
    endSession: {
      event: 'session.end',
      inTransaction: true,
      // One record per ended session (the cascade), each under its own session and root.
      allowed: async (req: EndSessionRequest, res: EndSessionResponse, caller, tx) => {
        const out: AuditEvent[] = [];
        for (const id of res.endedSessionIds) {
          const s = await (tx ?? store).getSession(id).catch(() => undefined);
          out.push(
            allowRecord('session.end', actorOnly(caller), {
              subject: id,
              sessionId: id,
              ...(s !== undefined && {
                rootSessionId: s.rootSessionId,
                agentId: s.entryId,
                principal: s.principal.id,
                principalIssuer: s.principal.issuer,
                ...(s.parentSessionId !== undefined && { parentSessionId: s.parentSessionId }),
              }),
              ...(id !== req.sessionId && { reason: `cascade from ${req.sessionId}` }),
              ...(id === req.sessionId && req.reason !== '' && { reason: req.reason.slice(0, 256) }),
            }),
          );
        }
        return out;
      },
      denied: (req: EndSessionRequest) => ({ subject: req.sessionId.slice(0, 256) }),
    },
    revokeSvid: {
      event: 'svid.revoke',
      inTransaction: true,
      allowed: (req: RevokeSvidRequest, res: RevokeSvidResponse) => [
        allowRecord(
          'svid.revoke',
          {},
          {
            subject: res.revocation?.id ?? '',
            serial: res.revocation?.id ?? '',
            ...(req.reason !== '' && { reason: req.reason.slice(0, 256) }),
          },
        ),
      ],
      denied: (req: RevokeSvidRequest) => ({ subject: req.serialHex.slice(0, 128) }),
    },
  };
}

export const SESSION_READ_ONLY = ['watchRevocations', 'getSession', 'listSessions'];

export const attestationMethods: Record<string, MethodAudit> = {
  renew: {
    event: 'svid.renew',
    inTransaction: true,
    allowed: (_req: never, res: RenewResponse, caller) => [issued('svid.renew', res.svid, caller)],
  },
};

const entryFields = (e: Entry | undefined): Partial<AuditEvent> =>
  e === undefined ? {} : { subject: e.spiffeId, agentId: e.id, scopes: [...e.allowedScopes] };

export const registrationMethods: Record<string, MethodAudit> = {
  createEntry: {
    event: 'entry.create',
    inTransaction: true,
    allowed: (_req: never, res: { entry?: Entry }, caller) => [
      allowRecord('entry.create', adminCaller(caller), entryFields(res.entry)),
    ],
    denied: (req: { entry?: Entry }) => ({ subject: req.entry?.spiffeId.slice(0, 2048) ?? '' }),
  },
  batchCreateEntry: {
    event: 'entry.create',
    inTransaction: true,
    allowed: (_req: never, res: { entries: Entry[] }, caller) =>
      res.entries.map((e) => allowRecord('entry.create', adminCaller(caller), entryFields(e))),
  },
  updateEntry: {
    event: 'entry.update',
    inTransaction: true,
    allowed: (_req: never, res: { entry?: Entry }, caller, _tx, detail?: EntryUpdateDetail) => [
      allowRecord('entry.update', adminCaller(caller), {
        ...entryFields(res.entry),
        ...(detail !== undefined &&
          res.entry !== undefined && { changes: entryChanges(detail.before, res.entry) }),
      }),
    ],
    denied: (req: UpdateEntryRequest) => ({ agentId: req.entry?.id.slice(0, 256) ?? '' }),
  },
  deleteEntry: {
    event: 'entry.delete',
    inTransaction: true,
    allowed: (req: DeleteEntryRequest, _res: never, caller) => [
      allowRecord('entry.delete', adminCaller(caller), { agentId: req.id }),
    ],
    denied: (req: DeleteEntryRequest) => ({ agentId: req.id.slice(0, 256) }),
  },
  createJoinToken: {
    event: 'join_token.create',
    inTransaction: true,
    // The token id, never the token: the secret is shown once, to the caller, and nowhere else.
    allowed: (_req: never, res: CreateJoinTokenResponse, caller) => [
      allowRecord('join_token.create', adminCaller(caller), {
        subject: res.spiffeId,
        agentId: res.entryId,
        reason: `token ${res.tokenId}`,
      }),
    ],
    denied: (req: CreateJoinTokenRequest) => ({
      ...(req.spiffeId !== '' && { subject: req.spiffeId.slice(0, 2048) }),
      ...(req.entryId !== '' && { agentId: req.entryId.slice(0, 256) }),
    }),
  },
};

const federationAudit = (event: 'federation.create' | 'federation.update' | 'federation.delete') => ({
  event,
  inTransaction: true,
  allowed: (
    req: { trustDomain?: string; relationship?: { trustDomain: string } },
    res: { relationship?: { trustDomain: string; bundleEndpointUrl: string; revision: number } },
    caller: AuditCaller,
  ) => [
    allowRecord(event, adminCaller(caller), {
      subject: `spiffe://${res.relationship?.trustDomain ?? req.trustDomain ?? req.relationship?.trustDomain ?? ''}`,
      ...(res.relationship !== undefined && {
        reason: `${res.relationship.bundleEndpointUrl} revision ${res.relationship.revision}`,
      }),
    }),
  ],
  denied: (req: { trustDomain?: string; relationship?: { trustDomain: string } }) => ({
    subject: `spiffe://${(req.trustDomain ?? req.relationship?.trustDomain ?? '').slice(0, 255)}`,
  }),
});

Object.assign(registrationMethods, {
  createFederationRelationship: federationAudit('federation.create'),
  updateFederationRelationship: federationAudit('federation.update'),
  deleteFederationRelationship: federationAudit('federation.delete'),
});

export const REGISTRATION_READ_ONLY = [
  'getEntry',
  'listEntries',
  'getFederationRelationship',
  'listFederationRelationships',
];

export const adminMethods: Record<string, MethodAudit> = {
  rotateCa: {
    event: 'ca.rotate',
    allowed: (_req: never, res: RotateCaResponse, caller) => [
      allowRecord('ca.rotate', adminCaller(caller), {
        subject: res.authority?.id ?? '',
        action: caRotationStepToJSON(res.step),
      }),
    ],
    denied: (req: RotateCaRequest) => ({ action: caRotationStepToJSON(req.step) }),
  },
};

export const ADMIN_READ_ONLY = ['getCa'];

export const nodeMethods: Record<string, MethodAudit> = {
  batchNewX509Svid: {
    event: 'svid.issue',
    inTransaction: true,
    allowed: (_req: never, res: BatchNewX509SvidResponse, caller) =>
      res.svids.map((s) => ({ ...issued('svid.issue', s, caller), action: 'node agent' })),
  },
  newJwtSvid: {
    event: 'jwt_svid.issue',
    // The SPIFFE ID and audiences; never the token.
    allowed: (req: NewJwtSvidRequest, res: NewJwtSvidResponse, caller) => [
      allowRecord('jwt_svid.issue', actorOnly(caller), {
        subject: res.spiffeId,
        agentId: req.entryId,
        action: `aud ${req.audience.join(' ')}`.slice(0, 1024),
      }),
    ],
    denied: (req: NewJwtSvidRequest) => ({ agentId: req.entryId.slice(0, 256) }),
  },
};

export const NODE_READ_ONLY = ['fetchEntries'];
