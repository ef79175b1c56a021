import * as fs from 'node:fs';
import { generateKeyPair } from '../../src/x509/keys';
import { encodePem } from '../../src/x509/pem';
import {
  createIntermediateCa,
  createRootCa,
  issueX509Svid,
  type IssuedCertificate,
} from '../../src/x509/profiles';

type KeyPair = ReturnType<typeof generateKeyPair>;

export const PROVISIONING_TD = 'provisioning.example';

export interface ProvisioningPki {
  root: IssuedCertificate;
  rootKey: KeyPair;
  inter: IssuedCertificate;
  interKey: KeyPair;
  device: IssuedCertificate;
  deviceKey: KeyPair;
}

/**
 * A provisioning PKI for x509pop built with our own profiles: root -> intermediate -> SPIFFE-style device
 * certificate, all EC P-256 (the device certificate lives an hour, the CAs a day).
 */
export function provisioningPki(deviceId = `spiffe://${PROVISIONING_TD}/device/gpu-node-7`): ProvisioningPki {
  const rootKey = generateKeyPair('ec-p256');
  const root = createRootCa({ trustDomain: PROVISIONING_TD, ttlSeconds: 86400, key: rootKey.privateKey });
  const interKey = generateKeyPair('ec-p256');
  const inter = createIntermediateCa({
    trustDomain: PROVISIONING_TD,
    ttlSeconds: 86400,
    publicKey: interKey.publicKey,
    issuer: { cert: root.cert, key: rootKey.privateKey },
  });
  const deviceKey = generateKeyPair('ec-p256');
  const device = issueX509Svid({
    spiffeId: deviceId,
    publicKey: deviceKey.publicKey,
    issuer: { cert: inter.cert, key: interKey.privateKey },
    ttlSeconds: 3600,
  });
  return { root, rootKey, inter, interKey, device, deviceKey };
}

/** The x509pop evidence a device presents: its certificate followed by the intermediate, as PEM. */
export function provisioningEvidencePem(pki: ProvisioningPki): string {
  return encodePem('CERTIFICATE', pki.device.der) + encodePem('CERTIFICATE', pki.inter.der);
}

/** Writes the provisioning root as a PEM CA bundle (what `attestors.x509pop.ca_bundle_file` names). */
export function writeProvisioningCaFile(pki: ProvisioningPki, file: string): string {
  fs.writeFileSync(file, encodePem('CERTIFICATE', pki.root.der));
  return file;
}
