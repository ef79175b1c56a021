import { AttestorUnknownError, InvalidArgumentError } from '../errors';
import type { Attestor } from './attestor';
import { JOIN_TOKEN_ATTESTOR, JoinTokenAttestor, type JoinTokenStore } from './join-token';
import {
  K8S_PSAT_ATTESTOR,
  K8sPsatAttestor,
  type K8sPsatClusterConfig,
  type K8sPsatOptions,
} from './k8s-psat';
import { X509POP_ATTESTOR, X509PopAttestor, type X509PopOptions } from './x509pop';

/** Every attestor type Lanyard implements. A server enables the ones its configuration names. */
export const ATTESTOR_TYPES: readonly string[] = [JOIN_TOKEN_ATTESTOR, K8S_PSAT_ATTESTOR, X509POP_ATTESTOR];

/**
 * The `attestors` block of the server's resolved configuration (ServerConfig['attestors'] is assignable to
 * it). Declared here so that attest/ does not depend on server/.
 */
export interface AttestorsConfig {
  joinToken?: Record<string, never>;
  k8sPsat?: { clusters: readonly K8sPsatClusterConfig[] };
  x509pop?: { caBundleFile: string };
}

export interface AttestorsDeps {
  /** Where join tokens are spent; required when join_token is enabled. */
  store?: JoinTokenStore;
  k8sPsat?: K8sPsatOptions;
  x509pop?: X509PopOptions;
}

/**
 * The enabled attestors by type. Only configured attestors exist here: asking for any other type, a known but
 * disabled one or an unknown one, is ERR_ATTESTOR_UNKNOWN, which maps to UNIMPLEMENTED (the server does not
 * offer that attestation method), not INVALID_ARGUMENT: the request may be well formed for another server.
 */
export class Attestors {
  private readonly byType: ReadonlyMap<string, Attestor>;

  /** @throws AttestationError(ERR_INVALID_ARGUMENT) when two attestors claim one type. */
  constructor(attestors: Iterable<Attestor>) {
    const map = new Map<string, Attestor>();
    for (const a of attestors) {
      if (map.has(a.type)) {
        throw new InvalidArgumentError(`two attestors for type "${a.type}"`);
      }
      map.set(a.type, a);
    }
    this.byType = map;
  }

  /**
   * Builds the attestors the configuration enables, reading their key files (JWKS, CA bundle) now.
   * @throws ConfigError naming the file when one cannot be used.
   */
  static async fromConfig(config: AttestorsConfig, deps: AttestorsDeps = {}): Promise<Attestors> {
    const list: Attestor[] = [];
    if (config.joinToken !== undefined) {
      if (deps.store === undefined) {
        throw new InvalidArgumentError('join_token is enabled but no store was given');
      }
      list.push(new JoinTokenAttestor(deps.store));
    }
    if (config.k8sPsat !== undefined) {
      list.push(await K8sPsatAttestor.fromConfig(config.k8sPsat.clusters, deps.k8sPsat));
    }
    if (config.x509pop !== undefined) {
      list.push(await X509PopAttestor.fromFile(config.x509pop.caBundleFile, deps.x509pop));
    }
    return new Attestors(list);
  }

  /** Enabled types, in a stable order (for the start-up log line). */
  get types(): string[] {
    return [...this.byType.keys()].sort();
  }

  /** @throws AttestationError(ERR_ATTESTOR_UNKNOWN) for a type that is not enabled here. */
  get(type: string): Attestor {
    const attestor = this.byType.get(type);
    if (attestor !== undefined) return attestor;
    const enabled = this.types.join(', ') || 'none';
    if (ATTESTOR_TYPES.includes(type)) {
      throw new AttestorUnknownError(
        `attestor "${type}" is not enabled on this server (enabled: ${enabled})`,
      );
    }
    // Client input: quoted and cut short before it reaches a message or a log.
    const shown = JSON.stringify(type.length > 64 ? `${type.slice(0, 64)}...` : type);
    throw new AttestorUnknownError(
      type === ''
        ? `attestor_type is empty (enabled: ${enabled})`
        : `unknown attestor type ${shown} (enabled: ${enabled})`,
    );
  }
}
