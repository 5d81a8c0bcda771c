/**
 * Reading ipvsadm's output into IPVS state (pure).
 *
 * - `ipvsadm -Sn` (save): every line is an ipvsadm argument vector, read with the same
 *   grammar as ipvsadm's own command line (ipvsadm-args.ts). ipvsadm normalises what it
 *   prints: `-w` is always there, a bare `-p` comes back as `-p 360`, scheduler flags are
 *   printed fallback first (`-b mh-fallback,mh-port`).
 * - `ipvsadm -Ln [-t|-u|--sctp-service ADDR:PORT]` (list): the table with each real
 *   server's ActiveConn and InActConn, which graceful termination needs.
 *
 * The formats are ipvsadm 1.31's printf formats (`-A %s -s %s`, ` -p %u`, ` -b `,
 * `-a %s -r %s %s -w %d`, `%s %s` + ` persistent %u`, `  -> %-28s %-7s %-6d %-10u %-10u`).
 * Options Switchboard never writes (a persistence netmask, a persistence engine, one-packet
 * scheduling, tunnel settings, flag-N scheduler flags) are kept as `extras`, so a virtual
 * or real server that carries them is seen to differ from the desired one and is rewritten.
 * Firewall-mark services have no address: they are listed apart, and never touched.
 */

import {
  addressSortKey,
  type Forwarding,
  type RealServer,
  type SchedulerFlag,
  type VirtualServer,
} from '../backends/ipvs/state.js';
import type { IPFamily } from '../model/ip.js';
import type { Protocol } from '../model/types.js';
import { type IpvsadmEntry, IpvsadmParseError, parseHostPort, parseIpvsadmLine } from './ipvsadm-args.js';

export interface KernelRealServer extends RealServer {
  /** ActiveConn, from the list format only */
  activeConnections?: number;
  /** InActConn, from the list format only */
  inactiveConnections?: number;
  /** settings Switchboard does not write (tunnel options), as ipvsadm prints them */
  extras: readonly string[];
}

export interface KernelVirtualServer extends VirtualServer {
  realServers: readonly KernelRealServer[];
  /** settings Switchboard does not write (`-M`, `--pe`, `-o`, `-b flag-N`), as ipvsadm prints them */
  extras: readonly string[];
}

export interface FwmarkService {
  fwmark: number;
  family: IPFamily;
}

export interface IpvsTable {
  /** sorted as state.ts orders them */
  virtualServers: KernelVirtualServer[];
  /** firewall-mark services (not Switchboard's, never touched) */
  fwmarkServices: FwmarkService[];
}

export class IpvsadmOutputError extends Error {
  override readonly name = 'IpvsadmOutputError';
  constructor(
    readonly lineNumber: number,
    readonly line: string,
    reason: string,
  ) {
    super(`ipvsadm output, line ${lineNumber}: ${reason}: ${JSON.stringify(line)}`);
  }
}

const KNOWN_FLAGS = new Set<string>(['mh-port', 'mh-fallback', 'sh-port', 'sh-fallback']);

interface Building {
  vs: Omit<KernelVirtualServer, 'realServers'>;
  realServers: KernelRealServer[];
}

function serviceKey(protocol: Protocol, address: string, port: number): string {
  return `${protocol} ${address} ${port}`;
}

/** Sorts by a key computed once per item (a comparator parsing addresses costs n log n parses). */
function sortByKey<T>(items: T[], key: (item: T) => string): T[] {
  return items
    .map((item) => ({ item, k: key(item) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map((x) => x.item);
}

const serverSortKey = (r: { address: string; port: number }) =>
  `${addressSortKey(r.address)}:${String(r.port).padStart(5, '0')}`;

function finish(map: Map<string, Building>, fwmarkServices: FwmarkService[]): IpvsTable {
  const virtualServers = [...map.values()].map(({ vs, realServers }) => ({
    ...vs,
    realServers: sortByKey(realServers, serverSortKey),
  }));
  // The order of compareVirtualServers: protocol name, address, port.
  return {
    virtualServers: sortByKey(virtualServers, (v) => `${v.protocol} ${serverSortKey(v)}`),
    fwmarkServices,
  };
}

function serviceFields(
  entry: IpvsadmEntry,
): Pick<KernelVirtualServer, 'scheduler' | 'persistenceSeconds' | 'flags' | 'extras'> {
  const flags: SchedulerFlag[] = [];
  const extras: string[] = [];
  const otherFlags: string[] = [];
  for (const f of entry.schedFlags ?? []) {
    if (KNOWN_FLAGS.has(f)) flags.push(f as SchedulerFlag);
    else otherFlags.push(f);
  }
  if (entry.netmask !== undefined) extras.push(`-M ${entry.netmask}`);
  if (entry.persistenceEngine !== undefined) extras.push(`--pe ${entry.persistenceEngine}`);
  if (entry.onePacket) extras.push('-o');
  if (otherFlags.length > 0) extras.push(`-b ${otherFlags.join(',')}`);
  return {
    scheduler: entry.scheduler ?? 'wlc',
    persistenceSeconds: entry.persistent ?? 0,
    flags: flags.sort(),
    extras,
  };
}

const NO_EXTRAS: readonly string[] = Object.freeze([]);

/** Parses `ipvsadm -Sn` output (all families). */
export function parseIpvsadmSave(text: string): IpvsTable {
  const services = new Map<string, Building>();
  const fwmarkServices: FwmarkService[] = [];
  const lines = text.split('\n');
  // ipvsadm prints each service's real servers right after it: the last one is usually the one.
  let last: Building | null = null;
  for (let index = 0; index < lines.length; index++) {
    const raw = lines[index]!;
    const line = raw.trim();
    if (line === '') continue;
    const fail = (reason: string) => new IpvsadmOutputError(index + 1, raw, reason);
    let entry: IpvsadmEntry;
    try {
      entry = parseIpvsadmLine(line);
    } catch (e) {
      if (e instanceof IpvsadmParseError) throw fail(e.message);
      throw e;
    }
    const svc = entry.service;
    if (!svc) throw fail('no service');
    if (svc.kind === 'fwmark') {
      if (entry.command === 'add-service') fwmarkServices.push({ fwmark: svc.fwmark, family: svc.family });
      else if (entry.command !== 'add-server') throw fail(`unexpected ${entry.command} line`);
      last = null;
      continue;
    }
    if (entry.command === 'add-service') {
      const key = serviceKey(svc.protocol, svc.address, svc.port);
      if (services.has(key)) throw fail('service listed twice');
      last = {
        vs: { protocol: svc.protocol, address: svc.address, port: svc.port, ...serviceFields(entry) },
        realServers: [],
      };
      services.set(key, last);
      continue;
    }
    if (entry.command !== 'add-server') throw fail(`unexpected ${entry.command} line`);
    const building =
      last !== null &&
      last.vs.port === svc.port &&
      last.vs.address === svc.address &&
      last.vs.protocol === svc.protocol
        ? last
        : services.get(serviceKey(svc.protocol, svc.address, svc.port));
    if (!building) throw fail('real server before its service');
    const server = entry.server!;
    building.realServers.push({
      address: server.address,
      port: server.port ?? svc.port,
      weight: entry.weight ?? 1,
      forwarding: entry.forwarding ?? 'gate',
      extras: entry.tunnel ?? NO_EXTRAS,
    });
  }
  return finish(services, fwmarkServices);
}

const LIST_PROTOCOLS: Readonly<Record<string, Protocol>> = { TCP: 'TCP', UDP: 'UDP', SCTP: 'SCTP' };
const LIST_FORWARDING: Readonly<Record<string, Forwarding>> = {
  Masq: 'masq',
  // "Local": masquerading to an address of this host.
  Local: 'masq',
  Route: 'gate',
  Tunnel: 'ipip',
};

/** Parses a service line's tail after the scheduler: ` (flags) persistent T mask M pe P ops`. */
function listServiceOptions(words: string[], fail: (r: string) => Error) {
  const flags: SchedulerFlag[] = [];
  const extras: string[] = [];
  let persistenceSeconds = 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w.startsWith('(') && w.endsWith(')')) {
      const other: string[] = [];
      for (const f of w.slice(1, -1).split(',')) {
        if (KNOWN_FLAGS.has(f)) flags.push(f as SchedulerFlag);
        else other.push(f);
      }
      if (other.length > 0) extras.push(`-b ${other.join(',')}`);
    } else if (w === 'persistent' || w === 'mask' || w === 'pe') {
      const value = words[++i];
      if (value === undefined) throw fail(`${w} without a value`);
      if (w === 'persistent') persistenceSeconds = Number(value);
      else extras.push(w === 'mask' ? `-M ${value}` : `--pe ${value}`);
    } else if (w === 'ops') {
      extras.push('-o');
    } else {
      throw fail(`unexpected ${JSON.stringify(w)}`);
    }
  }
  return { flags: flags.sort(), extras, persistenceSeconds };
}

/**
 * Parses `ipvsadm -Ln` output (the whole table, or one service with `-t/-u/--sctp-service`),
 * with each real server's connection counts.
 */
export function parseIpvsadmList(text: string): IpvsTable {
  const services = new Map<string, Building>();
  const fwmarkServices: FwmarkService[] = [];
  let current: Building | null = null;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    const fail = (reason: string) => new IpvsadmOutputError(index + 1, raw, reason);
    if (
      line === '' ||
      line.startsWith('IP Virtual Server version') ||
      line.startsWith('Prot LocalAddress:Port') ||
      line.startsWith('-> RemoteAddress:Port')
    ) {
      return;
    }
    const words = line.split(/\s+/);
    if (words[0] === '->') {
      if (current === null) {
        // a real server of a firewall-mark service (or of nothing): not ours to read
        return;
      }
      const hp = parseHostPort(words[1] ?? '');
      if (!hp || hp.port === null) throw fail('bad real server address');
      const counts = words.slice(-3).map((w) => (/^\d+$/.test(w) ? Number(w) : Number.NaN));
      const forwarding = LIST_FORWARDING[words[2] ?? ''];
      if (!forwarding || counts.some((n) => Number.isNaN(n)) || (words.length !== 6 && words.length !== 7)) {
        throw fail('expected "-> ADDR:PORT Forward [TunnelInfo] Weight ActiveConn InActConn"');
      }
      current.realServers.push({
        address: hp.address,
        port: hp.port,
        forwarding,
        weight: counts[0]!,
        activeConnections: counts[1]!,
        inactiveConnections: counts[2]!,
        extras: words.length === 7 ? [`tunnel ${words[3]}`] : [],
      });
      return;
    }
    if (words[0] === 'FWM') {
      const mark = Number(words[1]);
      if (!Number.isInteger(mark)) throw fail('bad firewall mark');
      fwmarkServices.push({ fwmark: mark, family: words[2] === 'IPv6' ? 'IPv6' : 'IPv4' });
      current = null;
      return;
    }
    const protocol = LIST_PROTOCOLS[words[0] ?? ''];
    if (!protocol) throw fail('expected a service line (TCP, UDP, SCTP or FWM)');
    const hp = parseHostPort(words[1] ?? '');
    if (!hp || hp.port === null) throw fail('bad virtual server address');
    const scheduler = words[2];
    if (!scheduler) throw fail('no scheduler');
    const options = listServiceOptions(words.slice(3), fail);
    const key = serviceKey(protocol, hp.address, hp.port);
    if (services.has(key)) throw fail('service listed twice');
    current = {
      vs: { protocol, address: hp.address, port: hp.port, scheduler, ...options },
      realServers: [],
    };
    services.set(key, current);
  });
  return finish(services, fwmarkServices);
}

/** `Timeout (tcp tcpfin udp): 900 120 300` from `ipvsadm -L --timeout`. */
export function parseIpvsadmTimeouts(text: string): { tcp: number; tcpFin: number; udp: number } {
  const m = /Timeout \(tcp tcpfin udp\):\s*(\d+)\s+(\d+)\s+(\d+)/.exec(text);
  if (!m) throw new Error(`ipvsadm -L --timeout: cannot read ${JSON.stringify(text.trim())}`);
  return { tcp: Number(m[1]), tcpFin: Number(m[2]), udp: Number(m[3]) };
}
