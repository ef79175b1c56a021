/**
 * AdminService: operator control of the server's CA (`lanyard ca rotate`, `lanyard ca show`). Served on the
 * admin socket; on the public listener only behind guardAdmin (an mTLS SVID whose entry has admin=true).
 */
import type { CaManager, RotationStep } from '../../ca';
import {
  AdminServiceService,
  type AdminServiceServer,
  type CaAuthority,
  CaAuthorityState,
  CaRotationStep,
} from '../../gen/lanyard/v1/admin';
import type { CaAuthorityInfo, CaAuthorityState as State } from '../../ca';
import { InvalidArgumentError } from '../../errors';
import { bundleToProto } from '../bundle/to-proto';
import { unaryHandler } from '../../internal/grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import type { Logger } from '../../internal/logging';

export const ADMIN_SERVICE_NAME = 'lanyard.v1.AdminService';

export interface AdminServiceDeps {
  ca: CaManager;
  logger: Logger;
}

export function createAdminService(deps: AdminServiceDeps): ServiceRegistration {
  const { ca } = deps;
  const log = deps.logger.child({ service: ADMIN_SERVICE_NAME });

  const implementation: AdminServiceServer = {
    rotateCa: unaryHandler('RotateCa', log, async (req) => {
      const done = await ca.rotate(stepFromProto(req.step));
      // A rotation is an operator action worth its own line beside the CA's: who asked is in the call log.
      log.info({ step: done.step, authorityId: done.authority.id }, 'manual CA rotation step');
      return {
        step: stepToProto(done.step),
        authority: authorityToProto(done.authority),
        authorities: ca.authorities().map(authorityToProto),
        bundle: bundleToProto(ca.bundle()),
      };
    }),

    getCa: unaryHandler(
      'GetCa',
      log,
      () =>
        Promise.resolve({
          authorities: ca.authorities().map(authorityToProto),
          bundle: bundleToProto(ca.bundle()),
          nextCheckAt: ca.nextCheckAt(),
        }),
      { okLevel: 'debug' },
    ),
  };

  return { name: ADMIN_SERVICE_NAME, definition: AdminServiceService, implementation };
}

function stepFromProto(step: CaRotationStep): RotationStep | 'next' {
  switch (step) {
    case CaRotationStep.CA_ROTATION_STEP_UNSPECIFIED:
      return 'next';
    case CaRotationStep.CA_ROTATION_STEP_PREPARE:
      return 'prepare';
    case CaRotationStep.CA_ROTATION_STEP_ACTIVATE:
      return 'activate';
    default:
      // An enum value from a newer client: refusing is safer than guessing which step was meant.
      throw new InvalidArgumentError(`step: unknown rotation step ${String(step)}`);
  }
}

function stepToProto(step: RotationStep): CaRotationStep {
  return step === 'prepare'
    ? CaRotationStep.CA_ROTATION_STEP_PREPARE
    : CaRotationStep.CA_ROTATION_STEP_ACTIVATE;
}

const STATES: Record<State, CaAuthorityState> = {
  prepared: CaAuthorityState.CA_AUTHORITY_STATE_PREPARED,
  active: CaAuthorityState.CA_AUTHORITY_STATE_ACTIVE,
  old: CaAuthorityState.CA_AUTHORITY_STATE_OLD,
};

export function authorityToProto(a: CaAuthorityInfo): CaAuthority {
  return {
    id: a.id,
    state: STATES[a.state],
    notBefore: a.notBefore,
    notAfter: a.notAfter,
    createdAt: a.createdAt,
    activatedAt: a.activatedAt,
    selfSigned: a.selfSigned,
    sha256Hex: a.sha256Hex,
    certDer: Buffer.from(a.certDer),
  };
}
