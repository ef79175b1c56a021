/** AttestationService: Attest (server-authenticated TLS) and Renew (mTLS with the caller's current SVID). */
import { AttestationServiceService, type AttestationServiceServer } from '../../gen/lanyard/v1/attestation';
import { unaryHandler } from '../../internal/grpc-call';
import type { ServiceRegistration } from '../grpc-server';
import { createAttestHandler, type AttestDeps } from './attest-stream';
import { renew } from './renew';

export const ATTESTATION_SERVICE_NAME = 'lanyard.v1.AttestationService';

export function createAttestationService(deps: AttestDeps): ServiceRegistration {
  const log = deps.logger.child({ service: ATTESTATION_SERVICE_NAME });
  const implementation: AttestationServiceServer = {
    attest: createAttestHandler({ ...deps, logger: log }),
    renew: unaryHandler('Renew', log, (req, call) => renew(deps, req, call)),
  };
  return { name: ATTESTATION_SERVICE_NAME, definition: AttestationServiceService, implementation };
}
