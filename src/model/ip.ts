/**
 * IP addresses and CIDRs as kube-proxy reads them.
 *
 * Hand-written because no library here does what kube-proxy does: its parser is
 * *sloppy* (Go 1.16 semantics kept by k8s.io/utils/net): IPv4 octets may carry
 * leading zeros and are read as decimal (`010.1.1.1` is 10.1.1.1, not octal 8), which
 * node:net rejects and most libraries read as octal. Addresses are re-printed in
 * canonical form (RFC 5952 for IPv6), so nothing from the input reaches rule text as
 * written: only bytes we formatted ourselves.
 */

export type IPFamily = 'IPv4' | 'IPv6';

export interface ParsedIP {
  family: IPFamily;
  bytes: Uint8Array; // 4 or 16
  /** canonical text, e.g. `10.1.1.1`, `fd00::1` */
  text: string;
}

export interface ParsedCIDR {
  family: IPFamily;
  /** network address (host bits cleared) */
  bytes: Uint8Array;
  prefix: number;
  /** canonical text of the network, e.g. `203.0.113.0/25` */
  text: string;
}

function parseDecimal(s: string, max: number): number | null {
  if (s.length === 0 || !/^[0-9]+$/.test(s)) return null;
  // Any number of leading zeros is fine (ParseIPSloppy); only the value counts.
  const n = Number.parseInt(s.replace(/^0+(?=\d)/, ''), 10);
  return n <= max ? n : null;
}

function parseIPv4Bytes(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const n = parseDecimal(parts[i]!, 255);
    if (n === null) return null;
    out[i] = n;
  }
  return out;
}

function parseIPv6Bytes(s: string): Uint8Array | null {
  if (s.length < 2 || s.length > 60 || !/^[0-9A-Fa-f:.]+$/.test(s)) return null;
  const out = new Uint8Array(16);
  let head = s;
  let tail = '';
  const dbl = s.indexOf('::');
  if (dbl !== -1) {
    if (s.indexOf('::', dbl + 1) !== -1) return null;
    head = s.slice(0, dbl);
    tail = s.slice(dbl + 2);
  }
  const groups = (text: string): number[] | null => {
    if (text === '') return [];
    const parts = text.split(':');
    const words: number[] = [];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIPv4Bytes(p);
        if (!v4) return null;
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9A-Fa-f]{1,4}$/.test(p)) return null;
      words.push(Number.parseInt(p, 16));
    }
    return words;
  };
  const h = groups(head);
  const t = groups(tail);
  if (!h || !t) return null;
  // An embedded IPv4 address may only end the address.
  if (dbl !== -1 && head.includes('.')) return null;
  const total = h.length + t.length;
  if (dbl === -1 ? total !== 8 : total > 7) return null;
  const words = [...h, ...new Array<number>(8 - total).fill(0), ...t];
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}

function formatIPv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952: lower case, no leading zeros, the first longest run (>= 2) of zero words as `::`. */
function formatIPv6(b: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (bestStart === -1) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Parses an IP the way kube-proxy's ParseIPSloppy does; null when it is not an IP. */
export function parseIP(input: string): ParsedIP | null {
  if (typeof input !== 'string') return null;
  if (input.includes(':')) {
    const bytes = parseIPv6Bytes(input);
    if (!bytes) return null;
    // Go treats IPv4-mapped IPv6 addresses as IPv4; refusing them avoids a family surprise.
    if (isV4Mapped(bytes)) return null;
    return { family: 'IPv6', bytes, text: formatIPv6(bytes) };
  }
  const bytes = parseIPv4Bytes(input);
  if (!bytes) return null;
  return { family: 'IPv4', bytes, text: formatIPv4(bytes) };
}

/** Parses `ip/prefix` sloppily and returns the canonical network (host bits cleared). */
export function parseCIDR(input: string): ParsedCIDR | null {
  if (typeof input !== 'string') return null;
  const slash = input.indexOf('/');
  if (slash === -1) return null;
  const ip = parseIP(input.slice(0, slash));
  if (!ip) return null;
  const bits = ip.family === 'IPv4' ? 32 : 128;
  const prefix = parseDecimal(input.slice(slash + 1), bits);
  if (prefix === null) return null;
  const bytes = maskBytes(ip.bytes, prefix);
  const text = `${ip.family === 'IPv4' ? formatIPv4(bytes) : formatIPv6(bytes)}/${prefix}`;
  return { family: ip.family, bytes, prefix, text };
}

function maskBytes(b: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) {
    const bitsHere = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = b[i]! & ((0xff << (8 - bitsHere)) & 0xff);
  }
  return out;
}

export function cidrContains(cidr: ParsedCIDR, ip: ParsedIP): boolean {
  if (cidr.family !== ip.family) return false;
  const masked = maskBytes(ip.bytes, cidr.prefix);
  for (let i = 0; i < masked.length; i++) if (masked[i] !== cidr.bytes[i]) return false;
  return true;
}

export function isLoopback(ip: ParsedIP): boolean {
  if (ip.family === 'IPv4') return ip.bytes[0] === 127;
  return ip.text === '::1';
}

/** `IP:port`, with brackets for IPv6: the endpoint string kube-proxy hashes and DNATs to. */
export function joinHostPort(ip: ParsedIP | { family: IPFamily; text: string }, port: number): string {
  return ip.family === 'IPv6' ? `[${ip.text}]:${port}` : `${ip.text}:${port}`;
}

export function familyOfText(text: string): IPFamily | null {
  return parseIP(text)?.family ?? null;
}
