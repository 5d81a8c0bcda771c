import { isIPv4, isIPv6 } from 'node:net';

export type IPFamily = 4 | 6;

/** An `address/prefix` string split into its parts; the address keeps its host bits (`10.0.0.5/8`). */
export interface ParsedPrefix {
  address: string;
  prefixLength: number;
  family: IPFamily;
}

/** The family of a textual IP address, or undefined if it is not one (zones such as `%eth0` are refused). */
export function ipFamily(address: string): IPFamily | undefined {
  if (address.includes('%')) return undefined;
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  return undefined;
}

/**
 * Parses `address/prefix` (what Go's net.ParseCIDR accepts: the prefix is decimal digits within the
 * family's bit length). Host bits may be set, as in an interface address `192.168.0.2/24`.
 */
export function parsePrefix(text: string): ParsedPrefix | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = text.slice(0, slash);
  const lengthText = text.slice(slash + 1);
  const family = ipFamily(address);
  if (family === undefined || !/^\d{1,3}$/.test(lengthText)) return undefined;
  const prefixLength = Number(lengthText);
  if (prefixLength > (family === 4 ? 32 : 128)) return undefined;
  return { address, prefixLength, family };
}
