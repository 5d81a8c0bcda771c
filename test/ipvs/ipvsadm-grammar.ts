/**
 * A reader for `ipvsadm -R` input, following ipvsadm's own command-line grammar (ipvsadm.c:
 * getopt over the long and short options), for the commands a desired state uses:
 *
 *   -A|--add-service  SERVICE -s|--scheduler NAME [-p|--persistent [SECONDS]] [-b|--sched-flags FLAGS]
 *   -a|--add-server   SERVICE -r|--real-server ADDR:PORT [-m|-g|-i] [-w|--weight N]
 *   SERVICE := -t|--tcp-service ADDR:PORT | -u|--udp-service ADDR:PORT | --sctp-service ADDR:PORT
 *
 * Options may come in any order, as with getopt. This kernel has no ip_vs, so the real
 * `ipvsadm -R` check runs later in a VM; this parser makes the same syntax decisions
 * ipvsadm makes (unknown option, missing argument, bad address, duplicate option).
 */
import { KERNEL_SCHEDULERS } from '../../src/kernel/fakes/ipvsadm.js';
import { parseIP } from '../../src/model/ip.js';

export interface ParsedRealServer {
  address: string;
  port: number;
  forwarding: 'masq' | 'gate' | 'ipip';
  weight: number;
}

export interface ParsedVirtualServer {
  protocol: 'TCP' | 'UDP' | 'SCTP';
  address: string;
  port: number;
  scheduler: string;
  persistence: number | null;
  flags: string[];
  realServers: ParsedRealServer[];
}

export class IpvsadmParseError extends Error {}

const SCHEDULERS = new Set<string>(KERNEL_SCHEDULERS);
const FLAGS = new Set(['sh-fallback', 'sh-port', 'mh-fallback', 'mh-port', 'flag-1', 'flag-2', 'flag-3']);
const SERVICE_OPTIONS: Record<string, ParsedVirtualServer['protocol']> = {
  '-t': 'TCP',
  '--tcp-service': 'TCP',
  '-u': 'UDP',
  '--udp-service': 'UDP',
  '--sctp-service': 'SCTP',
};

/** `ADDR:PORT` or `[ADDR6]:PORT`, as ipvsadm's parse_service reads it; the address must be canonical. */
function parseHostPort(text: string, where: string): { address: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  if (!m) throw new IpvsadmParseError(`${where}: illegal address:port ${JSON.stringify(text)}`);
  const ip = parseIP(m[1]!);
  const bracketed = text.startsWith('[');
  if (!ip || ip.text !== m[1] || (ip.family === 'IPv6') !== bracketed) {
    throw new IpvsadmParseError(`${where}: illegal address ${JSON.stringify(m[1])}`);
  }
  const port = Number(m[2]);
  if (!(port >= 1 && port <= 65535)) throw new IpvsadmParseError(`${where}: illegal port ${m[2]}`);
  return { address: ip.text, port };
}

function integer(text: string | undefined, min: number, max: number, what: string, where: string): number {
  if (text === undefined || !/^\d+$/.test(text))
    throw new IpvsadmParseError(`${where}: ${what} needs a number`);
  const n = Number(text);
  if (n < min || n > max) throw new IpvsadmParseError(`${where}: ${what} ${text} is out of range`);
  return n;
}

const serviceKey = (protocol: string, address: string, port: number) => `${protocol} ${address} ${port}`;

/** Reads the lines; a real server before its service is an error (ipvsadm: "Service not defined"). */
export function parseIpvsadmRestore(text: string): ParsedVirtualServer[] {
  const services = new Map<string, ParsedVirtualServer>();
  text.split('\n').forEach((line, i) => {
    const where = `line ${i + 1}`;
    if (line.trim() === '') return;
    const tokens = line.split(' ');
    if (tokens.some((t) => t === '')) throw new IpvsadmParseError(`${where}: stray whitespace`);
    const command = tokens[0];
    if (command !== '-A' && command !== '--add-service' && command !== '-a' && command !== '--add-server') {
      throw new IpvsadmParseError(`${where}: unsupported command ${JSON.stringify(command)}`);
    }
    const seen = new Set<string>();
    let service: { protocol: ParsedVirtualServer['protocol']; address: string; port: number } | null = null;
    let scheduler: string | null = null;
    let persistence: number | null = null;
    let flags: string[] = [];
    let real: { address: string; port: number } | null = null;
    let forwarding: ParsedRealServer['forwarding'] | null = null;
    let weight = 1;
    for (let t = 1; t < tokens.length; t++) {
      const opt = tokens[t]!;
      const canonical = opt in SERVICE_OPTIONS ? 'service' : opt;
      if (seen.has(canonical)) throw new IpvsadmParseError(`${where}: ${opt} given twice`);
      seen.add(canonical);
      const arg = () => {
        const value = tokens[++t];
        if (value === undefined || value.startsWith('-'))
          throw new IpvsadmParseError(`${where}: ${opt} needs an argument`);
        return value;
      };
      if (opt in SERVICE_OPTIONS) {
        service = { protocol: SERVICE_OPTIONS[opt]!, ...parseHostPort(arg(), where) };
      } else if (opt === '-s' || opt === '--scheduler') {
        scheduler = arg();
        if (!SCHEDULERS.has(scheduler))
          throw new IpvsadmParseError(`${where}: unknown scheduler ${scheduler}`);
      } else if (opt === '-p' || opt === '--persistent') {
        // the timeout is optional (ipvsadm defaults it to 300 s)
        const next = tokens[t + 1];
        persistence =
          next !== undefined && /^\d+$/.test(next) ? integer(tokens[++t], 1, 2 ** 31 - 1, opt, where) : 300;
      } else if (opt === '-b' || opt === '--sched-flags') {
        flags = arg().split(',');
        for (const f of flags)
          if (!FLAGS.has(f)) throw new IpvsadmParseError(`${where}: unknown scheduler flag ${f}`);
      } else if (opt === '-r' || opt === '--real-server') {
        real = parseHostPort(arg(), where);
      } else if (
        opt === '-m' ||
        opt === '--masquerading' ||
        opt === '-g' ||
        opt === '--gatewaying' ||
        opt === '-i' ||
        opt === '--ipip'
      ) {
        if (forwarding) throw new IpvsadmParseError(`${where}: more than one forwarding method`);
        forwarding =
          opt.startsWith('-m') || opt === '--masquerading'
            ? 'masq'
            : opt === '-g' || opt === '--gatewaying'
              ? 'gate'
              : 'ipip';
      } else if (opt === '-w' || opt === '--weight') {
        weight = integer(arg(), 0, 65535, opt, where);
      } else {
        throw new IpvsadmParseError(`${where}: unknown option ${JSON.stringify(opt)}`);
      }
    }
    if (!service) throw new IpvsadmParseError(`${where}: no service given`);
    const key = serviceKey(service.protocol, service.address, service.port);
    if (command === '-A' || command === '--add-service') {
      if (real || forwarding || seen.has('-w'))
        throw new IpvsadmParseError(`${where}: server options on a service`);
      if (!scheduler) throw new IpvsadmParseError(`${where}: no scheduler`);
      if (services.has(key)) throw new IpvsadmParseError(`${where}: service ${key} defined twice`);
      services.set(key, { ...service, scheduler, persistence, flags, realServers: [] });
      return;
    }
    if (scheduler || persistence !== null || flags.length > 0)
      throw new IpvsadmParseError(`${where}: service options on a real server`);
    if (!real) throw new IpvsadmParseError(`${where}: no real server given`);
    const vs = services.get(key);
    if (!vs) throw new IpvsadmParseError(`${where}: service ${key} not defined`);
    if (vs.realServers.some((rs) => rs.address === real!.address && rs.port === real!.port)) {
      throw new IpvsadmParseError(`${where}: real server ${real.address}:${real.port} added twice`);
    }
    vs.realServers.push({ ...real, forwarding: forwarding ?? 'gate', weight });
  });
  return [...services.values()];
}
