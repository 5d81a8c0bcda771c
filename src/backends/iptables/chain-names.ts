/**
 * Chain names exactly as kube-proxy computes them (spec §3), so that Switchboard and
 * kube-proxy can take over from each other without renaming a chain.
 */
import { createHash } from 'node:crypto';
import type { Protocol } from '../../model/types.js';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/**
 * First 16 characters of the RFC 4648 base32 encoding of SHA-256(input). Node has no
 * base32 codec and 10 bytes of a digest need no padding logic, so it is written here.
 */
export function chainHash(input: string): string {
  const digest = createHash('sha256').update(input).digest();
  let out = '';
  let value = 0;
  let bits = 0;
  // 16 characters x 5 bits = 80 bits = the first 10 bytes.
  for (let i = 0; i < 10; i++) {
    value = ((value << 8) | digest[i]!) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}

export interface ServiceChains {
  svc: string;
  svl: string;
  ext: string;
  fw: string;
}

export function serviceChains(nameString: string, protocol: Protocol): ServiceChains {
  const h = chainHash(nameString + protocol.toLowerCase());
  return { svc: `KUBE-SVC-${h}`, svl: `KUBE-SVL-${h}`, ext: `KUBE-EXT-${h}`, fw: `KUBE-FW-${h}` };
}

export function endpointChain(nameString: string, protocol: Protocol, endpoint: string): string {
  return `KUBE-SEP-${chainHash(nameString + protocol.toLowerCase() + endpoint)}`;
}

/** Prefixes of the per-service chains that stale-chain cleanup may delete. */
export const SERVICE_CHAIN_PREFIXES = [
  'KUBE-SVC-',
  'KUBE-SVL-',
  'KUBE-SEP-',
  'KUBE-FW-',
  'KUBE-EXT-',
] as const;

export function isServiceChain(name: string): boolean {
  return SERVICE_CHAIN_PREFIXES.some((p) => name.startsWith(p));
}
