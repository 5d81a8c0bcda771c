/**
 * ipset entries of the set types kube-proxy uses, read and printed as `ipset save` prints
 * them (ipset 7.17, checked on this project's hosts):
 * - `hash:ip,port` `IP,PROTO:PORT`; a protocol given as a number (`6:80`) or left out
 *   (`80` = tcp) is printed by name;
 * - `hash:ip,port,ip` `IP,PROTO:PORT,IP`;
 * - `hash:ip,port,net` `IP,PROTO:PORT,NET/PREFIX`, host bits cleared, and a host prefix
 *   (/32, /128) printed without it; a /0 is refused by ipset;
 * - `hash:ip` `IP`; `bitmap:port` `PORT` (a `PROTO:` prefix is accepted and dropped).
 * Canonical text is what makes desired and read-back entries comparable.
 */
import { type IPFamily, parseIP } from '../model/ip.js';

export type SetFamily = 'inet' | 'inet6';

/** Set types this module reads (kube-proxy's five, and hash:net for other agents' sets). */
export const KNOWN_SET_TYPES = [
  'hash:ip,port',
  'hash:ip,port,ip',
  'hash:ip,port,net',
  'hash:ip',
  'bitmap:port',
  'hash:net',
] as const;
export type KnownSetType = (typeof KNOWN_SET_TYPES)[number];

export function isKnownSetType(type: string): type is KnownSetType {
  return (KNOWN_SET_TYPES as readonly string[]).includes(type);
}

const PROTOCOL_NAMES: Readonly<Record<string, string>> = {
  '6': 'tcp',
  '17': 'udp',
  '132': 'sctp',
  '136': 'udplite',
  '1': 'icmp',
  '58': 'icmpv6',
};
const PROTOCOLS = new Set(['tcp', 'udp', 'sctp', 'udplite', 'icmp', 'icmpv6']);

export class IpsetEntryError extends Error {
  override readonly name = 'IpsetEntryError';
  constructor(
    message: string,
    /** refused by the kernel when the element is sent, not by the ipset tool while parsing */
    readonly byKernel = false,
  ) {
    super(message);
  }
}

function familyOf(family: SetFamily): IPFamily {
  return family === 'inet6' ? 'IPv6' : 'IPv4';
}

function ip(text: string, family: SetFamily): string {
  const parsed = parseIP(text);
  // ipset reads addresses with inet_pton: the sloppy forms kube-proxy's parser allows are refused.
  if (!parsed || (parsed.family === 'IPv4' && parsed.text !== text)) {
    throw new IpsetEntryError(`Syntax error: cannot parse ${text}: resolving to IPv4 address failed`);
  }
  if (parsed.family !== familyOf(family)) {
    throw new IpsetEntryError(
      `Syntax error: cannot parse ${text}: resolving to ${family === 'inet' ? 'IPv4' : 'IPv6'} address failed`,
    );
  }
  return parsed.text;
}

function port(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 65535) {
    throw new IpsetEntryError(`Syntax error: cannot parse '${text}' as a port number`);
  }
  return Number(text);
}

function protoPort(text: string): string {
  const colon = text.indexOf(':');
  if (colon === -1) return `tcp:${port(text)}`;
  let proto = text.slice(0, colon).toLowerCase();
  proto = PROTOCOL_NAMES[proto] ?? proto;
  if (!PROTOCOLS.has(proto)) throw new IpsetEntryError(`Syntax error: cannot parse '${text}' as a protocol`);
  return `${proto}:${port(text.slice(colon + 1))}`;
}

function net(text: string, family: SetFamily): string {
  const slash = text.indexOf('/');
  const address = ip(slash === -1 ? text : text.slice(0, slash), family);
  const bits = family === 'inet' ? 32 : 128;
  if (slash === -1) return address;
  const prefixText = text.slice(slash + 1);
  if (!/^\d+$/.test(prefixText) || Number(prefixText) < 1 || Number(prefixText) > bits) {
    throw new IpsetEntryError('The value of the CIDR parameter of the IP address is invalid', true);
  }
  const prefix = Number(prefixText);
  if (prefix === bits) return address;
  const bytes = parseIP(address)!.bytes;
  const masked = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    masked[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  const maskedText =
    family === 'inet'
      ? [...masked].join('.')
      : parseIP(
          Array.from({ length: 8 }, (_, i) => ((masked[2 * i]! << 8) | masked[2 * i + 1]!).toString(16)).join(
            ':',
          ),
        )!.text;
  return `${maskedText}/${prefix}`;
}

function parts(entry: string, count: number): string[] {
  const p = entry.split(',');
  if (p.length < count) {
    throw new IpsetEntryError(
      `Syntax error: ${count === 2 ? 'Second' : 'Third'} element is missing from ${entry}.`,
    );
  }
  if (p.length > count) throw new IpsetEntryError(`Syntax error: too many elements in ${entry}`);
  return p;
}

export interface SetShape {
  type: string;
  /** null for bitmap:port */
  family: SetFamily | null;
  /** bitmap:port's range, `[from, to]` */
  range?: readonly [number, number];
}

/**
 * The canonical (`ipset save`) text of `entry` for a set of `shape`; throws IpsetEntryError
 * with ipset's message when ipset would refuse it.
 */
export function canonicalEntry(shape: SetShape, entry: string): string {
  const family = shape.family ?? 'inet';
  switch (shape.type) {
    case 'hash:ip':
      return ip(entry, family);
    case 'hash:net':
      return net(entry, family);
    case 'hash:ip,port': {
      const [a, b] = parts(entry, 2);
      return `${ip(a!, family)},${protoPort(b!)}`;
    }
    case 'hash:ip,port,ip': {
      const [a, b, c] = parts(entry, 3);
      return `${ip(a!, family)},${protoPort(b!)},${ip(c!, family)}`;
    }
    case 'hash:ip,port,net': {
      const [a, b, c] = parts(entry, 3);
      return `${ip(a!, family)},${protoPort(b!)},${net(c!, family)}`;
    }
    case 'bitmap:port': {
      const text = entry.includes(':') ? entry.slice(entry.indexOf(':') + 1) : entry;
      const p = port(text);
      const [from, to] = shape.range ?? [0, 65535];
      if (p < from || p > to) throw new IpsetEntryError('Element is out of the range of the set', true);
      return String(p);
    }
    default:
      throw new IpsetEntryError(`set type ${shape.type} is not supported here`);
  }
}
