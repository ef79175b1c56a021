/** A gRPC status decided by the server on a call the agent made for a workload, relayed to it unchanged. */
import * as grpc from '@grpc/grpc-js';
import { ERROR_CODE_METADATA_KEY } from '../../internal/grpc-call';

export class ForwardedStatus extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    /** The server's stable Lanyard code (trailing metadata lanyard-error-code), when it sent one. */
    readonly errorCode: string | undefined,
  ) {
    super(details);
  }

  toStatus(): Partial<grpc.StatusObject> & { code: grpc.status } {
    const metadata = new grpc.Metadata();
    if (this.errorCode !== undefined) metadata.set(ERROR_CODE_METADATA_KEY, this.errorCode);
    return { code: this.code, details: this.details, metadata };
  }
}
