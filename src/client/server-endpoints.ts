/**
 * The Lanyard servers a client may talk to, and failover between them. Several servers share one database
 * (docs/operator/ha.md): any of them answers any call, so a client that loses one carries on with the next.
 *
 * Addresses are `host:port`, or gRPC's naming syntax `dns:[//dns-server/]host:port`. A host name is resolved to
 * all of its addresses (A and AAAA), each a server of its own; a name is resolved again after a round in which
 * every address failed, so servers added to or removed from the name are followed.
 *
 * Only a server that could not answer is left for the next: UNAVAILABLE (not reached, connection lost, TLS
 * failed) and DEADLINE_EXCEEDED. A refusal (PERMISSION_DENIED, INVALID_ARGUMENT, a spent token, ...) is the
 * answer of the shared state, which every other server would give too: it is returned as it is, never retried
 * elsewhere, so a refused credential is not replayed across the fleet.
 */
import * as grpc from '@grpc/grpc-js';
import * as dns from 'node:dns';
import * as net from 'node:net';
import { InvalidArgumentError } from '../errors';

/** One address or several; see the module comment for the syntax. */
export type ServerAddresses = string | readonly string[];

export interface FailoverOptions {
  /** Rounds over every address before giving up (default 1). */
  rounds?: number;
  /** Wait before the second round, doubled (with jitter) before each further one. Default 500 ms. */
  backoffMs?: number;
  /**
   * Called for each address left behind, with why, and the address tried next in this round (undefined when it
   * was the round's last: nothing is tried next, or only after the back-off).
   */
  onFailover?: (address: string, error: Error, next: string | undefined) => void;
}

interface Target {
  /** As configured, for messages. */
  spec: string;
  host: string;
  port: number;
  /** The DNS server a `dns://server/` address names. */
  dnsServer: string | undefined;
}

/** Whether `e` says the server did not answer (go to the next one), rather than that it refused. */
export function isFailoverError(e: unknown): boolean {
  if (typeof e !== 'object' || e === null || !('code' in e)) return false;
  const code = (e as { code: unknown }).code;
  return code === grpc.status.UNAVAILABLE || code === grpc.status.DEADLINE_EXCEEDED;
}

export class ServerEndpoints {
  private readonly targets: Target[];
  private resolved: string[] | undefined;
  private resolving: Promise<string[]> | undefined;
  private currentAddress: string | undefined;

  constructor(addresses: ServerAddresses) {
    const list = typeof addresses === 'string' ? [addresses] : [...addresses];
    if (list.length === 0) throw new InvalidArgumentError('at least one server address is needed');
    this.targets = list.map(parseTarget);
    // Addresses that are IP literals need no resolution: usable at once.
    if (this.targets.every((t) => net.isIP(t.host) !== 0)) {
      this.resolved = [...new Set(this.targets.map((t) => joinHostPort(t.host, t.port)))];
      this.currentAddress = this.resolved[0];
    }
  }

  /** The addresses as configured (before resolution). */
  get configured(): string[] {
    return this.targets.map((t) => t.spec);
  }

  /**
   * The address calls go to now: the first until it fails, then the next, and so on (sticky: a recovered
   * earlier server is not preferred). Before the first resolution, the first configured address.
   */
  current(): string {
    return this.currentAddress ?? joinHostPort(this.targets[0]!.host, this.targets[0]!.port);
  }

  /** Every address, resolved (resolving names once, or again after a failed round). */
  async addresses(): Promise<string[]> {
    if (this.resolved !== undefined) return this.resolved;
    this.resolving ??= this.resolve().finally(() => (this.resolving = undefined));
    return this.resolving;
  }

  /**
   * Reports that `address` did not answer. When it is the current address, the next one becomes current;
   * when another call already moved on, nothing changes (two calls failing together skip one server, not two).
   */
  failed(address: string): void {
    if (address !== this.currentAddress) return;
    const list = this.resolved;
    if (list === undefined || list.length === 0) return;
    const i = list.indexOf(address);
    this.currentAddress = list[(i + 1) % list.length];
  }

  /**
   * Runs `fn` against the current address; when it fails with UNAVAILABLE or DEADLINE_EXCEEDED, against the
   * next, and so on once round every address (then `rounds - 1` more rounds, after a back-off each). Any other
   * error is thrown at once. After a round where every address failed, names are resolved afresh.
   */
  async call<T>(fn: (address: string) => Promise<T>, options: FailoverOptions = {}): Promise<T> {
    const rounds = Math.max(1, options.rounds ?? 1);
    let last: unknown;
    for (let round = 0; round < rounds; round++) {
      if (round > 0) {
        const d = (options.backoffMs ?? 500) * 2 ** Math.min(round - 1, 10);
        await new Promise((r) => setTimeout(r, d / 2 + Math.random() * (d / 2)));
      }
      const list = await this.addresses();
      const start = Math.max(0, list.indexOf(this.current()));
      for (let i = 0; i < list.length; i++) {
        const address = list[(start + i) % list.length]!;
        try {
          const result = await fn(address);
          this.currentAddress = address;
          return result;
        } catch (e) {
          if (!isFailoverError(e)) throw e;
          last = e;
          this.failed(address);
          const next = i + 1 < list.length ? list[(start + i + 1) % list.length] : undefined;
          options.onFailover?.(address, e instanceof Error ? e : new Error(String(e)), next);
        }
      }
      // Every address failed: the names may point elsewhere by now.
      if (this.targets.some((t) => net.isIP(t.host) === 0)) this.resolved = undefined;
    }
    throw last;
  }

  private async resolve(): Promise<string[]> {
    const out: string[] = [];
    for (const t of this.targets) {
      if (net.isIP(t.host) !== 0) {
        out.push(joinHostPort(t.host, t.port));
        continue;
      }
      let hosts: string[];
      try {
        hosts = await lookup(t.host, t.dnsServer);
      } catch {
        // An unresolvable name is one unreachable server, not the end: the others may answer.
        hosts = [];
      }
      for (const h of hosts) out.push(joinHostPort(h, t.port));
    }
    const unique = [...new Set(out)];
    if (unique.length === 0) {
      const e = new Error(`no server address could be resolved from ${this.configured.join(', ')}`);
      throw Object.assign(e, { code: grpc.status.UNAVAILABLE, details: e.message });
    }
    this.resolved = unique;
    if (this.currentAddress === undefined || !unique.includes(this.currentAddress)) {
      this.currentAddress = unique[0];
    }
    return unique;
  }
}

/** `host:port`, `[v6]:port`, `dns:host:port`, `dns:///host:port` or `dns://dns-server/host:port`. */
function parseTarget(spec: string): Target {
  let rest = spec.trim();
  let dnsServer: string | undefined;
  if (rest.startsWith('dns:')) {
    rest = rest.slice('dns:'.length);
    if (rest.startsWith('//')) {
      const slash = rest.indexOf('/', 2);
      if (slash < 0) throw badAddress(spec);
      const authority = rest.slice(2, slash);
      if (authority !== '') dnsServer = authority;
      rest = rest.slice(slash + 1);
    }
  }
  const i = rest.lastIndexOf(':');
  if (i <= 0) throw badAddress(spec);
  const hostPart = rest.slice(0, i);
  const bracketed = /^\[.*\]$/.test(hostPart);
  const host = bracketed ? hostPart.slice(1, -1) : hostPart;
  // An IPv6 literal needs its brackets (is "::1:8081" port 8081 of ::1, or an address without a port?).
  if (bracketed !== net.isIPv6(host)) throw badAddress(spec);
  const portText = rest.slice(i + 1);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535 || host === '' || /[\s/]/.test(host)) {
    throw badAddress(spec);
  }
  if (net.isIP(host) === 0 && host.includes(':')) throw badAddress(spec);
  return { spec, host, port, dnsServer };
}

function badAddress(spec: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `server address ${JSON.stringify(spec)} is not host:port, [ipv6]:port or dns:[//dns-server/]host:port`,
  );
}

function joinHostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The system resolver, or the DNS server a `dns://server/` address names. */
async function lookup(host: string, dnsServer: string | undefined): Promise<string[]> {
  if (dnsServer === undefined) {
    const found = await dns.promises.lookup(host, { all: true, verbatim: true });
    return found.map((a) => a.address);
  }
  const resolver = new dns.promises.Resolver({ timeout: 2_000, tries: 2 });
  resolver.setServers([dnsServer]);
  const settle = async (p: Promise<string[]>): Promise<string[]> => {
    try {
      return await p;
    } catch (e) {
      // A name with only A (or only AAAA) records answers the other query with "no data".
      if ((e as { code?: string }).code === 'ENODATA' || (e as { code?: string }).code === 'ENOTFOUND')
        return [];
      throw e;
    }
  };
  const [v4, v6] = await Promise.all([settle(resolver.resolve4(host)), settle(resolver.resolve6(host))]);
  return [...v4, ...v6];
}
