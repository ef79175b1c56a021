import {
  AttestationError,
  AuthorizationError,
  type LanyardError,
  SignatureInvalidError,
  TokenAudienceMismatchError,
  TokenExpiredError,
  TokenInvalidError,
  TokenIssuerMismatchError,
  TokenNotYetValidError,
  UnknownAuthorityError,
} from '../errors';
import type { AttestationResult, Attestor, ChallengeChannel, Selector } from './attestor';
import { checkEvidenceSize, evidenceDigest, evidenceText } from './evidence';
import { JwksFile } from './jwks-file';
import { decodeJwt, type DecodedJwt, jwtSignedBy, MAX_JWT_BYTES } from './jwt';

export const K8S_PSAT_ATTESTOR = 'k8s_psat';
/** Selector type of the k8s_psat attestor: `k8s:ns:<namespace>`, `k8s:sa:<name>`, ... */
export const K8S_SELECTOR_TYPE = 'k8s';
/**
 * Clock skew tolerated on exp, nbf and iat: the 60 s that go-jose, and so the Kubernetes API server, allows.
 * Projected tokens live an hour or more, so a minute of slack is small against their lifetime.
 */
export const DEFAULT_K8S_LEEWAY_SECONDS = 60;

/** One cluster whose tokens are accepted; the same shape as the server's resolved config. */
export interface K8sPsatClusterConfig {
  /** Appears in the `k8s:cluster:<name>` selector. */
  name: string;
  /** Must be one of the token's `aud` values. */
  audience: string;
  /** JWKS of the cluster's service-account token issuer. */
  jwksFile: string;
  /** Expected `iss`; when absent, any issuer whose token this cluster's keys signed. */
  issuer?: string;
  /** "namespace:serviceaccount" pairs allowed to attest; when absent, every service account. */
  allowedServiceAccounts?: string[];
}

export interface K8sPsatOptions {
  leewaySeconds?: number;
  /** For the JWKS reload rate limit; default Date.now. */
  clockMs?: () => number;
}

interface Cluster {
  config: K8sPsatClusterConfig;
  jwks: JwksFile;
}

/** The `kubernetes.io` claim of a projected, pod-bound service-account token. */
interface KubernetesClaims {
  namespace: string;
  serviceAccount: { name: string; uid: string };
  pod: { name: string; uid: string };
  /** Since Kubernetes 1.30 (ServiceAccountTokenPodNodeInfo); absent in tokens of older clusters. */
  node?: { name: string; uid?: string };
}

/**
 * Kubernetes projected service-account tokens (PSAT): a JWT the kubelet mounts into the pod, signed by the
 * cluster's service-account issuer and bound to the pod, with an audience chosen in the pod spec.
 *
 * Which cluster: the evidence is the bare token, so the cluster is the one whose JWKS verifies the signature.
 * The key decides, not `iss`: many clusters keep the default issuer `https://kubernetes.default.svc...`,
 * and a token must never be accepted for a cluster whose key did not sign it. Then, for that cluster: `iss`
 * (when configured), `aud` contains the configured audience (a token minted for another service is not ours to
 * accept), exp/nbf/iat with leeway, the pod-bound `kubernetes.io` claims, and the service-account allow-list.
 *
 * Selectors (type `k8s`): `cluster:<name>`, `ns:<namespace>`, `sa:<service account>`, `sa-uid:<uid>`,
 * `pod-name:<name>`, `pod-uid:<uid>`, and `node-name:<name>` (`node-uid:<uid>`) when the token names the node.
 */
export class K8sPsatAttestor implements Attestor {
  readonly type = K8S_PSAT_ATTESTOR;
  private readonly leewaySeconds: number;

  private constructor(
    private readonly clusters: readonly Cluster[],
    options: K8sPsatOptions,
  ) {
    this.leewaySeconds = options.leewaySeconds ?? DEFAULT_K8S_LEEWAY_SECONDS;
  }

  /** Reads every cluster's JWKS now. @throws ConfigError naming the file of a bad JWKS. */
  static async fromConfig(
    clusters: readonly K8sPsatClusterConfig[],
    options: K8sPsatOptions = {},
  ): Promise<K8sPsatAttestor> {
    const loaded: Cluster[] = [];
    for (const config of clusters) {
      const jwks = await JwksFile.open(config.jwksFile, options.clockMs ? { clockMs: options.clockMs } : {});
      loaded.push({ config: { ...config }, jwks });
    }
    return new K8sPsatAttestor(loaded, options);
  }

  async attest(evidence: Uint8Array, _io: ChallengeChannel, now: Date): Promise<AttestationResult> {
    checkEvidenceSize(evidence, MAX_JWT_BYTES, 'Kubernetes service-account token');
    const jwt = decodeJwt(evidenceText(evidence, 'Kubernetes service-account token').trim());
    const signedBy = await this.clustersThatSigned(jwt);
    const cluster = this.checkIssuer(jwt, signedBy);
    this.checkAudience(jwt, cluster);
    this.checkTimes(jwt, now);
    const k8s = kubernetesClaims(jwt.payload);
    checkSubject(jwt.payload, k8s);
    const allowed = cluster.allowedServiceAccounts;
    if (allowed !== undefined && !allowed.includes(`${k8s.namespace}:${k8s.serviceAccount.name}`)) {
      throw new AuthorizationError(
        `service account ${k8s.namespace}:${k8s.serviceAccount.name} is not in allowed_service_accounts of cluster "${cluster.name}"`,
      );
    }
    return {
      selectors: selectorsOf(cluster.name, k8s),
      evidenceSha256: evidenceDigest(evidence),
      agentIdHint: `${K8S_PSAT_ATTESTOR}/${cluster.name}/${k8s.pod.uid}`,
      // The kubelet refreshes the token; the pod attests again with the new one.
      canReattest: true,
    };
  }

  /**
   * The clusters one of whose keys made the signature (in configuration order). A cluster whose JWKS file has
   * become unusable is skipped while another cluster verifies the token; when none does, its error is the
   * answer, since the token may well be one of its own.
   */
  private async clustersThatSigned(jwt: DecodedJwt): Promise<K8sPsatClusterConfig[]> {
    const kid = jwt.header.kid;
    const signedBy: K8sPsatClusterConfig[] = [];
    let namedKeyFailed: string | undefined;
    let unusable: LanyardError | undefined;
    for (const { config, jwks } of this.clusters) {
      let keys;
      try {
        keys = await jwks.keysFor(kid);
      } catch (e) {
        if (!(e instanceof AttestationError)) throw e;
        unusable ??= e;
        continue;
      }
      if (keys.some((k) => jwtSignedBy(jwt, k))) signedBy.push(config);
      else if (kid !== undefined && keys.some((k) => k.kid === kid)) namedKeyFailed ??= config.name;
    }
    if (signedBy.length > 0) return signedBy;
    if (namedKeyFailed !== undefined) {
      throw new SignatureInvalidError(
        `token signature does not verify with key ${quote(kid)} of cluster "${namedKeyFailed}": the token was altered or signed by another key`,
      );
    }
    if (unusable !== undefined) throw unusable;
    throw new UnknownAuthorityError(
      `token is signed by a key${kid === undefined ? '' : ` (kid ${quote(kid)})`} that no configured cluster trusts (${this.clusterNames()}): a token of another cluster, or an issuer key not in its JWKS`,
    );
  }

  private checkIssuer(jwt: DecodedJwt, signedBy: K8sPsatClusterConfig[]): K8sPsatClusterConfig {
    const iss = jwt.payload.iss;
    if (typeof iss !== 'string' || iss === '') {
      throw new TokenInvalidError('token has no "iss" (issuer) claim');
    }
    const cluster = signedBy.find((c) => c.issuer === undefined || c.issuer === iss);
    if (cluster === undefined) {
      const first = signedBy[0]!;
      throw new TokenIssuerMismatchError(
        `token issuer ${quote(iss)} is not the issuer ${quote(first.issuer ?? '')} of cluster "${first.name}", whose key signed it`,
      );
    }
    return cluster;
  }

  private checkAudience(jwt: DecodedJwt, cluster: K8sPsatClusterConfig): void {
    const aud = jwt.payload.aud;
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : undefined;
    if (audiences === undefined || !audiences.every((a): a is string => typeof a === 'string')) {
      throw new TokenInvalidError('token has no valid "aud" (audience) claim');
    }
    if (!audiences.includes(cluster.audience)) {
      throw new TokenAudienceMismatchError(
        `token audience [${audiences.slice(0, 8).map(quote).join(', ')}] does not include ${quote(cluster.audience)}, required by cluster "${cluster.name}": the token was issued for another service`,
      );
    }
  }

  private checkTimes(jwt: DecodedJwt, now: Date): void {
    const t = now.getTime() / 1000;
    const exp = numericDate(jwt.payload, 'exp', true)!;
    if (t > exp + this.leewaySeconds) {
      throw new TokenExpiredError(`token expired at ${isoOf(exp)}`);
    }
    const nbf = numericDate(jwt.payload, 'nbf', false);
    if (nbf !== undefined && t < nbf - this.leewaySeconds) {
      throw new TokenNotYetValidError(`token is not valid before ${isoOf(nbf)}`);
    }
    const iat = numericDate(jwt.payload, 'iat', false);
    if (iat !== undefined && t < iat - this.leewaySeconds) {
      throw new TokenNotYetValidError(`token was issued in the future (${isoOf(iat)}): check the clocks`);
    }
  }

  private clusterNames(): string {
    return this.clusters.map((c) => `"${c.config.name}"`).join(', ');
  }
}

function selectorsOf(cluster: string, k8s: KubernetesClaims): Selector[] {
  const values = [
    `cluster:${cluster}`,
    `ns:${k8s.namespace}`,
    `sa:${k8s.serviceAccount.name}`,
    `sa-uid:${k8s.serviceAccount.uid}`,
    `pod-name:${k8s.pod.name}`,
    `pod-uid:${k8s.pod.uid}`,
  ];
  if (k8s.node !== undefined) {
    values.push(`node-name:${k8s.node.name}`);
    if (k8s.node.uid !== undefined) values.push(`node-uid:${k8s.node.uid}`);
  }
  return values.map((value) => ({ type: K8S_SELECTOR_TYPE, value }));
}

/**
 * The pod-bound claims. A token without a pod (a legacy secret-based token, or a TokenRequest bound to no pod)
 * proves nothing about a running workload and is refused.
 */
function kubernetesClaims(payload: Record<string, unknown>): KubernetesClaims {
  const k = payload['kubernetes.io'];
  if (!isObject(k)) {
    throw new TokenInvalidError('token has no "kubernetes.io" claim: not a projected service-account token');
  }
  const namespace = name(k.namespace, 'kubernetes.io.namespace');
  const sa = object(k.serviceaccount, 'kubernetes.io.serviceaccount');
  const pod = k.pod;
  if (!isObject(pod)) {
    throw new TokenInvalidError(
      'token is not bound to a pod (no kubernetes.io.pod claim): use a projected service-account token volume',
    );
  }
  const claims: KubernetesClaims = {
    namespace,
    serviceAccount: {
      name: name(sa.name, 'kubernetes.io.serviceaccount.name'),
      uid: name(sa.uid, 'kubernetes.io.serviceaccount.uid'),
    },
    pod: { name: name(pod.name, 'kubernetes.io.pod.name'), uid: name(pod.uid, 'kubernetes.io.pod.uid') },
  };
  if (k.node !== undefined) {
    const node = object(k.node, 'kubernetes.io.node');
    claims.node = { name: name(node.name, 'kubernetes.io.node.name') };
    if (node.uid !== undefined) claims.node.uid = name(node.uid, 'kubernetes.io.node.uid');
  }
  return claims;
}

/** `sub`, when present, must name the same service account as the kubernetes.io claims. */
function checkSubject(payload: Record<string, unknown>, k8s: KubernetesClaims): void {
  const sub = payload.sub;
  const expected = `system:serviceaccount:${k8s.namespace}:${k8s.serviceAccount.name}`;
  if (sub !== undefined && sub !== expected) {
    throw new TokenInvalidError(
      `token subject ${quote(typeof sub === 'string' ? sub : String(sub))} does not match its kubernetes.io claims (${expected})`,
    );
  }
}

/** Kubernetes names are at most 253 characters (DNS subdomain); anything else in these claims is malformed. */
function name(v: unknown, claim: string): string {
  if (typeof v !== 'string' || v === '' || v.length > 253) {
    throw new TokenInvalidError(`token claim ${claim} is missing or not a valid name`);
  }
  return v;
}

function object(v: unknown, claim: string): Record<string, unknown> {
  if (!isObject(v)) throw new TokenInvalidError(`token claim ${claim} is missing`);
  return v;
}

function numericDate(payload: Record<string, unknown>, claim: string, required: boolean): number | undefined {
  const v = payload[claim];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new TokenInvalidError(
      v === undefined ? `token has no "${claim}" claim` : `token claim "${claim}" is not a NumericDate`,
    );
  }
  return v;
}

function isoOf(seconds: number): string {
  const d = new Date(seconds * 1000);
  return Number.isNaN(d.getTime()) ? String(seconds) : d.toISOString();
}

/** Claims and kids are attacker-chosen text: quoted and cut short before they reach a message or a log. */
function quote(v: string | undefined): string {
  const s = v ?? '';
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
