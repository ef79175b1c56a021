/**
 * A promise-based client for the admin socket's APIs (registration, bundle, CA), used by the CLI and tests.
 * Errors arrive as AdminCallError carrying the gRPC status and the stable Lanyard error code.
 */
import * as grpc from '@grpc/grpc-js';
import {
  BatchCreateEntryRequest,
  type BatchCreateEntryResponse,
  CreateEntryRequest,
  type CreateEntryResponse,
  CreateJoinTokenRequest,
  type CreateJoinTokenResponse,
  type DeepPartial,
  DeleteEntryRequest,
  type DeleteEntryResponse,
  GetEntryRequest,
  type GetEntryResponse,
  ListEntriesRequest,
  type ListEntriesResponse,
  RegistrationServiceClient,
  UpdateEntryRequest,
  type UpdateEntryResponse,
  CreateFederationRelationshipRequest,
  type CreateFederationRelationshipResponse,
  GetFederationRelationshipRequest,
  type GetFederationRelationshipResponse,
  ListFederationRelationshipsRequest,
  type ListFederationRelationshipsResponse,
  UpdateFederationRelationshipRequest,
  type UpdateFederationRelationshipResponse,
  DeleteFederationRelationshipRequest,
  type DeleteFederationRelationshipResponse,
} from '../gen/lanyard/v1/registration';
import { BundleServiceClient, GetBundleRequest, type GetBundleResponse } from '../gen/lanyard/v1/bundle';
import {
  AdminServiceClient,
  GetCaRequest,
  type GetCaResponse,
  RotateCaRequest,
  type RotateCaResponse,
} from '../gen/lanyard/v1/admin';
import {
  EndSessionRequest,
  type EndSessionResponse,
  GetSessionRequest,
  type GetSessionResponse,
  ListSessionsRequest,
  type ListSessionsResponse,
  RevokeSvidRequest,
  type RevokeSvidResponse,
  SessionServiceClient,
} from '../gen/lanyard/v1/session';
import { ERROR_CODE_METADATA_KEY } from '../internal/grpc-call';

/** A failed call: `code` is the gRPC status, `lanyardCode` the stable error code when the server sent one. */
export class AdminCallError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly lanyardCode: string | undefined,
  ) {
    super(`${grpc.status[code] ?? code}: ${details}`);
    this.name = 'AdminCallError';
  }

  static from(e: grpc.ServiceError): AdminCallError {
    const raw = e.metadata?.get(ERROR_CODE_METADATA_KEY)[0];
    return new AdminCallError(e.code, e.details, typeof raw === 'string' ? raw : undefined);
  }
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

export interface AdminClientOptions {
  /** Per-call deadline. Default 10 s. */
  timeoutMs?: number;
}

export class AdminClient {
  readonly socketPath: string;
  private readonly client: RegistrationServiceClient;
  private readonly bundleClient: BundleServiceClient;
  private readonly adminClient: AdminServiceClient;
  private readonly sessionClient: SessionServiceClient;
  private readonly timeoutMs: number;

  constructor(socketPath: string, options: AdminClientOptions = {}) {
    this.socketPath = socketPath;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.client = new RegistrationServiceClient(`unix://${socketPath}`, grpc.credentials.createInsecure());
    this.bundleClient = new BundleServiceClient(`unix://${socketPath}`, grpc.credentials.createInsecure());
    this.adminClient = new AdminServiceClient(`unix://${socketPath}`, grpc.credentials.createInsecure());
    this.sessionClient = new SessionServiceClient(`unix://${socketPath}`, grpc.credentials.createInsecure());
  }

  /** Ends a session and, transitively, every session delegated from it. */
  endSession(req: DeepPartial<EndSessionRequest>): Promise<EndSessionResponse> {
    return this.unary(this.sessionClient.endSession, EndSessionRequest.fromPartial(req), this.sessionClient);
  }
  getSession(req: DeepPartial<GetSessionRequest>): Promise<GetSessionResponse> {
    return this.unary(this.sessionClient.getSession, GetSessionRequest.fromPartial(req), this.sessionClient);
  }
  listSessions(req: DeepPartial<ListSessionsRequest>): Promise<ListSessionsResponse> {
    return this.unary(
      this.sessionClient.listSessions,
      ListSessionsRequest.fromPartial(req),
      this.sessionClient,
    );
  }
  revokeSvid(req: DeepPartial<RevokeSvidRequest>): Promise<RevokeSvidResponse> {
    return this.unary(this.sessionClient.revokeSvid, RevokeSvidRequest.fromPartial(req), this.sessionClient);
  }

  getBundle(req: DeepPartial<GetBundleRequest> = {}): Promise<GetBundleResponse> {
    return this.unary(this.bundleClient.getBundle, GetBundleRequest.fromPartial(req), this.bundleClient);
  }

  /** One CA rotation step; step UNSPECIFIED (the default) prepares when nothing is prepared, else activates. */
  rotateCa(req: DeepPartial<RotateCaRequest> = {}): Promise<RotateCaResponse> {
    return this.unary(this.adminClient.rotateCa, RotateCaRequest.fromPartial(req), this.adminClient);
  }
  getCa(): Promise<GetCaResponse> {
    return this.unary(this.adminClient.getCa, GetCaRequest.fromPartial({}), this.adminClient);
  }

  createEntry(req: DeepPartial<CreateEntryRequest>): Promise<CreateEntryResponse> {
    return this.unary(this.client.createEntry, CreateEntryRequest.fromPartial(req));
  }
  batchCreateEntry(req: DeepPartial<BatchCreateEntryRequest>): Promise<BatchCreateEntryResponse> {
    return this.unary(this.client.batchCreateEntry, BatchCreateEntryRequest.fromPartial(req));
  }
  getEntry(req: DeepPartial<GetEntryRequest>): Promise<GetEntryResponse> {
    return this.unary(this.client.getEntry, GetEntryRequest.fromPartial(req));
  }
  listEntries(req: DeepPartial<ListEntriesRequest>): Promise<ListEntriesResponse> {
    return this.unary(this.client.listEntries, ListEntriesRequest.fromPartial(req));
  }
  updateEntry(req: DeepPartial<UpdateEntryRequest>): Promise<UpdateEntryResponse> {
    return this.unary(this.client.updateEntry, UpdateEntryRequest.fromPartial(req));
  }
  deleteEntry(req: DeepPartial<DeleteEntryRequest>): Promise<DeleteEntryResponse> {
    return this.unary(this.client.deleteEntry, DeleteEntryRequest.fromPartial(req));
  }
  createJoinToken(req: DeepPartial<CreateJoinTokenRequest>): Promise<CreateJoinTokenResponse> {
    return this.unary(this.client.createJoinToken, CreateJoinTokenRequest.fromPartial(req));
  }

  createFederationRelationship(
    req: DeepPartial<CreateFederationRelationshipRequest>,
  ): Promise<CreateFederationRelationshipResponse> {
    return this.unary(
      this.client.createFederationRelationship,
      CreateFederationRelationshipRequest.fromPartial(req),
    );
  }
  getFederationRelationship(
    req: DeepPartial<GetFederationRelationshipRequest>,
  ): Promise<GetFederationRelationshipResponse> {
    return this.unary(
      this.client.getFederationRelationship,
      GetFederationRelationshipRequest.fromPartial(req),
    );
  }
  listFederationRelationships(): Promise<ListFederationRelationshipsResponse> {
    return this.unary(
      this.client.listFederationRelationships,
      ListFederationRelationshipsRequest.fromPartial({}),
    );
  }
  updateFederationRelationship(
    req: DeepPartial<UpdateFederationRelationshipRequest>,
  ): Promise<UpdateFederationRelationshipResponse> {
    return this.unary(
      this.client.updateFederationRelationship,
      UpdateFederationRelationshipRequest.fromPartial(req),
    );
  }
  deleteFederationRelationship(
    req: DeepPartial<DeleteFederationRelationshipRequest>,
  ): Promise<DeleteFederationRelationshipResponse> {
    return this.unary(
      this.client.deleteFederationRelationship,
      DeleteFederationRelationshipRequest.fromPartial(req),
    );
  }

  close(): void {
    this.client.close();
    this.bundleClient.close();
    this.adminClient.close();
    this.sessionClient.close();
  }

  private unary<Req, Res>(
    method: UnaryMethod<Req, Res>,
    request: Req,
    client: grpc.Client = this.client,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      method.call(
        client,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + this.timeoutMs },
        (err, response) => (err ? reject(AdminCallError.from(err)) : resolve(response)),
      );
    });
  }
}
