/**
 * The connection-tracking table, through the `conntrack` CLI (conntrack-tools) and a
 * CommandRunner, so that tests see their own network namespace's table.
 *
 * Two operations, both per IP family (the family is always passed: without `-f`,
 * `conntrack -L` lists both families):
 * - list one protocol's flows: `conntrack -L -f ipv4 -p udp -o extended`, parsed here;
 * - delete the flows matching a filter: `conntrack -D -f ipv4 -p udp --orig-dst IP
 *   --orig-port-dst PORT --reply-src IP --reply-port-src PORT` (any subset of the four).
 *   conntrack exits 1 with "0 flow entries have been deleted" when nothing matched: that is
 *   an answer, not a failure.
 * Output formats were recorded from conntrack-tools 1.4.7 (Debian 12).
 */
import { type IPFamily, parseIP } from '../model/ip.js';
import type { Protocol } from '../model/types.js';
import { CommandError, type CommandRunner } from './exec.js';

export const CONNTRACK_BINARY = 'conntrack';
const DEFAULT_TIMEOUT_MS = 60_000;

/** IANA protocol numbers, as conntrack prints them after the protocol's name. */
export const PROTOCOL_NUMBERS: Readonly<Record<Protocol, number>> = { TCP: 6, UDP: 17, SCTP: 132 };

/** Layer-4 protocols whose tuples carry ports (tcp, udp, dccp, sctp, udplite). */
const PORT_PROTOCOLS = new Set([6, 17, 33, 132, 136]);

const FAMILY_ARG: Readonly<Record<IPFamily, string>> = { IPv4: 'ipv4', IPv6: 'ipv6' };

export interface FlowTuple {
  /** canonical IP */
  src: string;
  dst: string;
  /** 0 for protocols without ports */
  sport: number;
  dport: number;
}

/** One conntrack entry: the original direction and the (possibly NATed) reply direction. */
export interface ConntrackFlow {
  family: IPFamily;
  /** layer-4 protocol number (17 = UDP) */
  protocol: number;
  original: FlowTuple;
  /** for a DNATed flow, `reply.src`/`reply.sport` is the DNAT target (the endpoint) */
  reply: FlowTuple;
}

/** Which flows `conntrack -D` deletes: all of those matching every field given. */
export interface ConntrackDeleteFilter {
  family: IPFamily;
  protocol: Protocol;
  /** `--orig-dst` */
  origDst?: string;
  /** `--orig-port-dst` */
  origDstPort?: number;
  /** `--reply-src` */
  replySrc?: string;
  /** `--reply-port-src` */
  replySrcPort?: number;
}

/** A line of `conntrack -L` output this parser does not understand. */
export class ConntrackParseError extends Error {
  override readonly name = 'ConntrackParseError';
  constructor(
    readonly lineNumber: number,
    readonly line: string,
    reason: string,
  ) {
    super(`conntrack -L output, line ${lineNumber}: ${reason}: ${JSON.stringify(line)}`);
  }
}

function port(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,5}$/.test(text)) return null;
  const n = Number(text);
  return n <= 65535 ? n : null;
}

/**
 * Parses one flow line of `conntrack -L` (plain or `-o extended`), e.g.
 * `ipv4     2 udp      17 29 src=10.0.0.1 dst=10.96.0.10 sport=40000 dport=53 [UNREPLIED]
 *  src=10.244.1.6 dst=10.0.0.1 sport=5353 dport=40000 mark=0 use=1`.
 * The first src/dst/sport/dport are the original direction, the second the reply.
 */
export function parseConntrackLine(line: string, lineNumber = 1): ConntrackFlow {
  const fail = (reason: string) => new ConntrackParseError(lineNumber, line, reason);
  const tokens = line.trim().split(/\s+/);
  const firstPair = tokens.findIndex((t) => t.includes('='));
  if (firstPair === -1) throw fail('no key=value fields');
  let prefix = tokens.slice(0, firstPair);
  let family: IPFamily | null = null;
  if (prefix[0] === 'ipv4' || prefix[0] === 'ipv6') {
    family = prefix[0] === 'ipv4' ? 'IPv4' : 'IPv6';
    prefix = prefix.slice(2);
  }
  const protocol = Number(prefix[1]);
  if (!/^\d+$/.test(prefix[1] ?? '') || protocol > 255)
    throw fail('no protocol number after the protocol name');

  const seen: Record<'src' | 'dst' | 'sport' | 'dport', string[]> = {
    src: [],
    dst: [],
    sport: [],
    dport: [],
  };
  for (const token of tokens.slice(firstPair)) {
    const eq = token.indexOf('=');
    if (eq === -1) continue; // [UNREPLIED], [ASSURED], ...
    const key = token.slice(0, eq);
    if (key === 'src' || key === 'dst' || key === 'sport' || key === 'dport')
      seen[key].push(token.slice(eq + 1));
  }
  if (seen.src.length !== 2 || seen.dst.length !== 2) throw fail('expected src= and dst= twice');
  const hasPorts = PORT_PROTOCOLS.has(protocol);
  if (hasPorts && (seen.sport.length !== 2 || seen.dport.length !== 2)) {
    throw fail('expected sport= and dport= twice');
  }

  const tuple = (i: 0 | 1): FlowTuple => {
    const src = parseIP(seen.src[i]!);
    const dst = parseIP(seen.dst[i]!);
    if (!src || !dst) throw fail(`bad address in the ${i === 0 ? 'original' : 'reply'} tuple`);
    const sport = hasPorts ? port(seen.sport[i]) : 0;
    const dport = hasPorts ? port(seen.dport[i]) : 0;
    if (sport === null || dport === null)
      throw fail(`bad port in the ${i === 0 ? 'original' : 'reply'} tuple`);
    return { src: src.text, dst: dst.text, sport, dport };
  };
  const original = tuple(0);
  const reply = tuple(1);
  const addressFamily = parseIP(original.src)!.family;
  if (family !== null && family !== addressFamily)
    throw fail(`${family} flow with ${addressFamily} addresses`);
  return { family: addressFamily, protocol, original, reply };
}

/** Parses the stdout of `conntrack -L` (the "N flow entries have been shown" summary goes to stderr). */
export function parseConntrackListing(text: string): ConntrackFlow[] {
  const flows: ConntrackFlow[] = [];
  const lines = text.split('\n');
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    flows.push(parseConntrackLine(line, i + 1));
  }
  return flows;
}

/** How many entries `conntrack -D` reports deleted, from its summary line; null if absent. */
export function parseDeletedCount(stderr: string): number | null {
  const m = /(\d+) flow entries have been deleted/.exec(stderr);
  return m ? Number(m[1]) : null;
}

export function listArgs(family: IPFamily, protocol: Protocol): string[] {
  return ['-L', '-f', FAMILY_ARG[family], '-p', protocol.toLowerCase(), '-o', 'extended'];
}

/** The `conntrack -D` arguments for a filter; refuses a filter that would match a whole protocol. */
export function deleteArgs(filter: ConntrackDeleteFilter): string[] {
  const args = ['-D', '-f', FAMILY_ARG[filter.family], '-p', filter.protocol.toLowerCase()];
  const address = (flag: string, value: string) => {
    const ip = parseIP(value);
    if (!ip || ip.family !== filter.family) {
      throw new Error(
        `conntrack delete filter: ${flag} ${JSON.stringify(value)} is not an ${filter.family} address`,
      );
    }
    args.push(flag, ip.text);
  };
  const portArg = (flag: string, value: number) => {
    if (!Number.isInteger(value) || value < 1 || value > 65535) {
      throw new Error(`conntrack delete filter: ${flag} ${value} is not a port (1-65535)`);
    }
    args.push(flag, String(value));
  };
  if (filter.origDst !== undefined) address('--orig-dst', filter.origDst);
  if (filter.origDstPort !== undefined) portArg('--orig-port-dst', filter.origDstPort);
  if (filter.replySrc !== undefined) address('--reply-src', filter.replySrc);
  if (filter.replySrcPort !== undefined) portArg('--reply-port-src', filter.replySrcPort);
  if (args.length === 5) {
    throw new Error(
      `conntrack delete filter matches every ${filter.protocol} flow: refusing to delete them all`,
    );
  }
  return args;
}

/** What the cleanup needs from the table; tests may fake it. */
export interface ConntrackTable {
  list(family: IPFamily, protocol: Protocol): Promise<ConntrackFlow[]>;
  /** Deletes the matching flows; returns how many were deleted. */
  delete(filter: ConntrackDeleteFilter): Promise<number>;
}

export interface ConntrackOptions {
  timeoutMs?: number;
}

export class Conntrack implements ConntrackTable {
  private readonly timeoutMs: number;

  constructor(
    private readonly runner: CommandRunner,
    options: ConntrackOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async list(family: IPFamily, protocol: Protocol): Promise<ConntrackFlow[]> {
    // Rejects (CommandError) on a non-zero exit: an empty table still exits 0.
    const r = await this.runner.run(CONNTRACK_BINARY, listArgs(family, protocol), {
      timeoutMs: this.timeoutMs,
    });
    return parseConntrackListing(r.stdout);
  }

  async delete(filter: ConntrackDeleteFilter): Promise<number> {
    const args = deleteArgs(filter);
    const r = await this.runner.run(CONNTRACK_BINARY, args, { reject: false, timeoutMs: this.timeoutMs });
    const count = parseDeletedCount(r.stderr);
    if (r.exitCode === 1 && count === 0) return 0;
    if (r.exitCode !== 0) {
      throw CommandError.exit(CONNTRACK_BINARY, args, r);
    }
    // Each deleted entry is also printed on stdout.
    return count ?? r.stdout.split('\n').filter((l) => l.trim() !== '').length;
  }
}
