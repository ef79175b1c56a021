/**
 * A small authoritative DNS server on 127.0.0.1 (UDP, RFC 1035): answers A and AAAA queries for the names it is
 * given, NXDOMAIN for any other name. Clients reach it with `dns://127.0.0.1:<port>/name:port` addresses, so a
 * name resolving to several loopback servers is tested without touching the system resolver or the network.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';

export interface TestDnsServer {
  /** `127.0.0.1:<port>`, the authority of a `dns://` address. */
  readonly address: string;
  /** Replaces the records of `name` (IPv4 and IPv6 literals). */
  set(name: string, addresses: string[]): void;
  /** Queries answered so far. */
  readonly queries: number;
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_AAAA = 28;

export async function startDnsServer(records: Record<string, string[]> = {}): Promise<TestDnsServer> {
  const zone = new Map(Object.entries(records).map(([k, v]) => [k.toLowerCase(), v]));
  const socket = dgram.createSocket('udp4');
  let queries = 0;
  socket.on('message', (msg, rinfo) => {
    const reply = answer(msg, zone);
    if (reply === undefined) return;
    queries++;
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    set(name, addresses) {
      zone.set(name.toLowerCase(), addresses);
    },
    get queries() {
      return queries;
    },
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

/** The response to one query, or undefined for a datagram that is not one. */
function answer(msg: Buffer, zone: Map<string, string[]>): Buffer | undefined {
  if (msg.length < 12 || (msg[2]! & 0x80) !== 0 || msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let i = 12;
  while (i < msg.length && msg[i] !== 0) {
    const len = msg[i]!;
    if (len > 63 || i + 1 + len > msg.length) return undefined;
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('ascii'));
    i += 1 + len;
  }
  if (i + 5 > msg.length) return undefined;
  const question = msg.subarray(12, i + 5);
  const qtype = msg.readUInt16BE(i + 1);
  const name = labels.join('.').toLowerCase();
  const known = zone.get(name);
  const family = qtype === TYPE_A ? 4 : qtype === TYPE_AAAA ? 6 : 0;
  const matching = (known ?? []).filter((a) => net.isIP(a) === family);
  const rdata = matching.map((a) => (family === 4 ? v4Bytes(a) : v6Bytes(a)));
  const header = Buffer.alloc(12);
  header.writeUInt16BE(msg.readUInt16BE(0), 0);
  // QR, AA, RD copied; RCODE 3 (NXDOMAIN) for a name not in the zone.
  header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | (known === undefined ? 3 : 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(rdata.length, 6);
  const answers = rdata.map((data) => {
    const rr = Buffer.alloc(12 + data.length);
    rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    rr.writeUInt16BE(qtype, 2);
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(1, 6); // TTL 1 s: resolution is repeated by the client, never cached for long
    rr.writeUInt16BE(data.length, 10);
    data.copy(rr, 12);
    return rr;
  });
  return Buffer.concat([header, question, ...answers]);
}

function v4Bytes(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}

function v6Bytes(a: string): Buffer {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, k) => out.writeUInt16BE(parseInt(g || '0', 16), k * 2));
  return out;
}
