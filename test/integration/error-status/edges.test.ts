/**
 * A library error thrown behind a real edge arrives as the status of its code's table: over a loopback gRPC
 * call (the server's unaryHandler, read back on the client as the same class) and over an HTTPS request to
 * the hop helper (HTTP status and JSON body), for every code.
 */
import assert from 'node:assert/strict';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { ErrorCode, errorClasses, errorFromCode, type LanyardErrorCode } from '../../../src/errors';
import { createHopHttpsServer, HopHttpsAgent } from '../../../src/hop/tls';
import { unaryHandler } from '../../../src/internal/grpc-call';
import { errorFromStatus, grpcStatusByCode } from '../../../src/internal/grpc-status-map';
import { httpStatusByCode } from '../../../src/internal/http-status-map';
import { authorizeId } from '../../../src/verify';
import { pkiSource } from '../../support/hop';
import { createPki, issueSvid } from '../../support/pki';

const codes = Object.values(ErrorCode) as LanyardErrorCode[];
const raw = (b: Buffer): Buffer => b;
type Refuse = (request: Buffer, callback: (e: grpc.ServiceError | null) => void) => void;

describe('error statuses at the edges', () => {
  it('gRPC: every code arrives as its status and trailer, and the client rebuilds its class', async () => {
    const service: grpc.ServiceDefinition = {
      refuse: {
        path: '/lanyard.test.Errors/Refuse',
        requestStream: false,
        responseStream: false,
        requestSerialize: raw,
        requestDeserialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    };
    const server = new grpc.Server();
    server.addService(service, {
      refuse: unaryHandler<Buffer, Buffer>('Refuse', pino({ level: 'silent' }), (req) => {
        const code = req.toString('utf8') as LanyardErrorCode;
        return Promise.reject(errorFromCode(code, `refused with ${code}`));
      }),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const Client = grpc.makeGenericClientConstructor(service, 'Errors');
    const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const refuse = (client as unknown as { refuse: Refuse }).refuse;
    const call = (code: string): Promise<grpc.ServiceError> =>
      new Promise((resolve, reject) =>
        refuse.call(client, Buffer.from(code), (e) =>
          e ? resolve(e) : reject(new Error(`${code}: the call succeeded`)),
        ),
      );
    try {
      for (const code of codes) {
        const e = await call(code);
        assert.equal(e.code, grpcStatusByCode[code], `${code}: gRPC status`);
        assert.equal(e.details, `refused with ${code}`);
        assert.deepEqual(e.metadata.get('lanyard-error-code'), [code]);
        const back = errorFromStatus(e);
        assert.ok(back instanceof errorClasses[code], `${code}: rebuilt as ${back?.name}`);
        assert.equal(back.cause, e);
      }
    } finally {
      client.close();
      server.forceShutdown();
    }
  });

  it('HTTP: every code a hop policy refuses with arrives as its HTTP status and JSON body', async () => {
    const TD = 'example.org';
    const pki = createPki(TD);
    const serviceId = `spiffe://${TD}/service`;
    const service = pkiSource(issueSvid(pki, serviceId), pki.bundle);
    const caller = pkiSource(issueSvid(pki, `spiffe://${TD}/caller`), pki.bundle);
    let current: LanyardErrorCode = ErrorCode.INTERNAL;
    const server = createHopHttpsServer(
      {
        source: service,
        authorize: () => {
          throw errorFromCode(current, `refused with ${current}`);
        },
        cache: null,
      },
      (_req, res) => res.end('{}'),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const agent = new HopHttpsAgent({ source: caller, authorize: authorizeId(serviceId) });
    const get = (): Promise<{ status: number; body: { error: { code: string; message: string } } }> =>
      new Promise((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as never }));
          })
          .on('error', reject);
      });
    try {
      for (const code of codes) {
        current = code;
        const answer = await get();
        assert.equal(answer.status, httpStatusByCode[code], `${code}: HTTP status`);
        assert.deepEqual(answer.body, { error: { code, message: `refused with ${code}` } });
      }
    } finally {
      agent.destroy();
      server.close();
    }
  });
});
