/**
 * A write-only witness: each entry sent as one RFC 5424 syslog message over UDP to a collector, ideally on
 * another host that the database's writers cannot reach (a SIEM keeps it). The message is the entry line,
 * MSGID its type:
 *
 *   <PRI>1 2026-12-04T18:34:07.123Z host lanyard 4242 checkpoint - {"chain":...,"type":"checkpoint",...}
 *
 * UDP delivers at most once and says nothing when a datagram is lost, so this witness complements a file
 * witness rather than replacing it; `lanyard audit verify` cannot read it back (a person or the SIEM compares).
 */
import { createSocket, type Socket } from 'node:dgram';
import { hostname } from 'node:os';
import { AuditRecordInvalidError, AuditWriteFailedError } from '../errors';
import type { AuditWitness } from './witness';

/** RFC 5424 §6.2.1 facility codes a witness may use. */
export const SYSLOG_FACILITIES = {
  auth: 4,
  authpriv: 10,
  daemon: 3,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
} as const;
export type SyslogFacility = keyof typeof SYSLOG_FACILITIES;

/** Severity "notice": a normal but significant condition. */
const NOTICE = 5;

export interface SyslogWitnessOptions {
  /** `udp://host:port` (IPv6 hosts in brackets). */
  target: string;
  facility?: SyslogFacility;
  /** APP-NAME; default "lanyard". */
  appName?: string;
}

export class SyslogWitness implements AuditWitness {
  readonly name: string;
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly host: string,
    private readonly port: number,
    private readonly pri: number,
    private readonly appName: string,
    target: string,
  ) {
    this.name = `syslog:${target}`;
  }

  /** @throws AuditError(ERR_AUDIT_RECORD_INVALID) for a target that is not udp://host:port. */
  static open(options: SyslogWitnessOptions): SyslogWitness {
    const { host, port } = parseSyslogTarget(options.target);
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    socket.unref();
    const pri = SYSLOG_FACILITIES[options.facility ?? 'authpriv'] * 8 + NOTICE;
    return new SyslogWitness(socket, host, port, pri, options.appName ?? 'lanyard', options.target);
  }

  append(line: string): Promise<void> {
    if (this.closed) return Promise.reject(new AuditWriteFailedError(`${this.name} is closed`));
    const msgId = /"type":"([a-z-]{1,32})"/.exec(line)?.[1] ?? '-';
    const message = `<${this.pri}>1 ${new Date().toISOString()} ${hostname() || '-'} ${this.appName} ${process.pid} ${msgId} - ${line}`;
    return new Promise((resolve, reject) =>
      this.socket.send(message, this.port, this.host, (e) =>
        e ? reject(new AuditWriteFailedError(`cannot send to ${this.name}`, { cause: e })) : resolve(),
      ),
    );
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** `udp://host:port` -> parts. @throws AuditError naming what is wrong. */
export function parseSyslogTarget(target: string): { host: string; port: number } {
  const m = /^udp:\/\/(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(target);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new AuditRecordInvalidError(
      `syslog witness target ${JSON.stringify(target.slice(0, 200))} must be udp://host:port`,
    );
  }
  return { host: m[1] ?? m[2] ?? '', port };
}
