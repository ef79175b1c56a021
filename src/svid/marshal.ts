/** An X509Svid's chain and key in the two encodings go-spiffe's Marshal and MarshalRaw produce. */
import type { KeyObject } from 'node:crypto';
import type { ParsedCertificate } from '../x509/certificate';
import { encodePem } from '../x509/pem';
import type { MarshaledX509Svid } from './x509-svid';

export function marshalX509Svid(
  chain: readonly ParsedCertificate[],
  privateKey: KeyObject,
): MarshaledX509Svid<string> {
  return Object.freeze({
    certificates: chain.map((c) => encodePem('CERTIFICATE', c.der)).join(''),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  });
}

export function marshalX509SvidRaw(
  chain: readonly ParsedCertificate[],
  privateKey: KeyObject,
): MarshaledX509Svid<Uint8Array> {
  return Object.freeze({
    certificates: new Uint8Array(Buffer.concat(chain.map((c) => c.der))),
    key: new Uint8Array(privateKey.export({ type: 'pkcs8', format: 'der' })),
  });
}
