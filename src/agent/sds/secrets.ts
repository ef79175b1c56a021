/**
 * The SDS secrets a workload may have, built from the agent's cache as SPIRE's agent builds them:
 * - its X.509-SVIDs as `tls_certificate` secrets, each named by its SPIFFE ID, and the first (in SPIFFE ID
 *   order) also as `default`;
 * - its trust domain's bundle as a `validation_context` (`trusted_ca`) named by the trust domain's SPIFFE ID
 *   and `ROOTCA`, and each federated bundle its entries name in federates_with, by trust domain ID;
 * - `ALL`: every bundle it may use, in Envoy's SPIFFE certificate validator, which checks each peer against
 *   the bundle of the peer's own trust domain only (one `trusted_ca` holding every CA would let a foreign CA
 *   vouch for our SPIFFE IDs).
 */
import { createHash } from 'node:crypto';
import type { X509Bundle } from '../../bundle';
import { InvalidArgumentError } from '../../errors';
import { TypedExtensionConfig } from '../../gen/envoy/config/core/v3/extension';
import {
  CertificateValidationContext,
  TlsCertificate,
} from '../../gen/envoy/extensions/transport_sockets/tls/v3/common';
import { Secret } from '../../gen/envoy/extensions/transport_sockets/tls/v3/secret';
import { SPIFFECertValidatorConfig } from '../../gen/envoy/extensions/transport_sockets/tls/v3/tls_spiffe_validator_config';
import type { Any } from '../../gen/google/protobuf/any';
import { encodePem } from '../../x509/pem';
import type { Entitlement } from '../cache';

export const SECRET_TYPE_URL = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
const VALIDATOR_TYPE_URL =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig';
/** Envoy's name for its SPIFFE certificate validator extension. */
const SPIFFE_VALIDATOR_NAME = 'envoy.tls.cert_validator.spiffe';

/** The resource names SPIRE's agent answers to besides SPIFFE IDs (its defaults, kept for Envoy configs). */
export const DEFAULT_SVID_NAME = 'default';
export const DEFAULT_BUNDLE_NAME = 'ROOTCA';
export const ALL_BUNDLES_NAME = 'ALL';

export interface SecretSet {
  /** Every secret the caller may ask for, by name (aliases included). */
  byName: Map<string, Secret>;
  /** The names a wildcard request (no resource names) gets: SPIFFE IDs and trust domain IDs, no aliases. */
  wildcard: string[];
}

export function secretsFor(
  entitled: readonly Entitlement[],
  bundle: X509Bundle,
  federated: readonly X509Bundle[],
): SecretSet {
  const byName = new Map<string, Secret>();
  const wildcard: string[] = [];
  for (const { svid } of entitled) {
    const spiffeId = svid.id.toString();
    if (byName.has(spiffeId)) continue;
    const chainPem = svid.chain.map((c) => encodePem('CERTIFICATE', c.der)).join('');
    const keyPem = svid.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const tls = TlsCertificate.fromPartial({
      certificateChain: { specifier: { $case: 'inlineBytes', value: Buffer.from(chainPem) } },
      privateKey: { specifier: { $case: 'inlineBytes', value: Buffer.from(keyPem) } },
    });
    byName.set(spiffeId, { name: spiffeId, type: { $case: 'tlsCertificate', value: tls } });
    wildcard.push(spiffeId);
    if (!byName.has(DEFAULT_SVID_NAME)) {
      byName.set(DEFAULT_SVID_NAME, {
        name: DEFAULT_SVID_NAME,
        type: { $case: 'tlsCertificate', value: tls },
      });
    }
  }
  const bundles = [bundle, ...federated];
  for (const b of bundles) {
    const id = b.trustDomain.idString();
    byName.set(id, trustedCa(id, b));
    wildcard.push(id);
  }
  byName.set(DEFAULT_BUNDLE_NAME, trustedCa(DEFAULT_BUNDLE_NAME, bundle));
  byName.set(ALL_BUNDLES_NAME, spiffeValidator(ALL_BUNDLES_NAME, bundles));
  return { byName, wildcard };
}

/**
 * The secrets `names` ask for (all of `wildcard` when empty), as Any resources in the order asked.
 * @throws InvalidArgumentError naming what the caller may not have (as SPIRE's agent answers).
 */
export function selectSecrets(set: SecretSet, names: readonly string[]): Any[] {
  const wanted = names.length === 0 ? set.wildcard : [...new Set(names)];
  const missing = wanted.filter((n) => !set.byName.has(n));
  if (missing.length > 0) {
    throw new InvalidArgumentError(
      `no secret ${missing.map((n) => JSON.stringify(n)).join(', ')} for this workload: it may ask for ` +
        `"${DEFAULT_SVID_NAME}", "${DEFAULT_BUNDLE_NAME}", "${ALL_BUNDLES_NAME}", its own SPIFFE IDs, and the ` +
        'trust domain IDs of its bundles',
    );
  }
  return wanted.map((n) => ({
    typeUrl: SECRET_TYPE_URL,
    value: Buffer.from(Secret.encode(set.byName.get(n)!).finish()),
  }));
}

/** A version that changes exactly when the content does (the same state gives the same version). */
export function versionOf(resources: readonly Any[]): string {
  const h = createHash('sha256');
  for (const r of resources) h.update(r.value).update('\n');
  return h.digest('base64url').slice(0, 22);
}

function trustedCa(name: string, b: X509Bundle): Secret {
  return {
    name,
    type: {
      $case: 'validationContext',
      value: CertificateValidationContext.fromPartial({
        trustedCa: { specifier: { $case: 'inlineBytes', value: Buffer.from(b.toPem()) } },
      }),
    },
  };
}

function spiffeValidator(name: string, bundles: readonly X509Bundle[]): Secret {
  const config = SPIFFECertValidatorConfig.fromPartial({
    trustDomains: bundles.map((b) => ({
      name: b.trustDomain.name,
      trustBundle: { specifier: { $case: 'inlineBytes', value: Buffer.from(b.toPem()) } },
    })),
  });
  return {
    name,
    type: {
      $case: 'validationContext',
      value: CertificateValidationContext.fromPartial({
        customValidatorConfig: TypedExtensionConfig.fromPartial({
          name: SPIFFE_VALIDATOR_NAME,
          typedConfig: {
            typeUrl: VALIDATOR_TYPE_URL,
            value: Buffer.from(SPIFFECertValidatorConfig.encode(config).finish()),
          },
        }),
      }),
    },
  };
}
