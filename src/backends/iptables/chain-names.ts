/**
 * Chain names exactly as kube-proxy computes them (spec §3), so that Switchboard and
 * kube-proxy can take over from each other without renaming a chain.
 */
import { hash } from 'node:crypto';
import type { Protocol } from '../../model/types.js';

const BASE32_CODES = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'].map((c) => c.charCodeAt(0));

/**
 * First 16 characters of the RFC 4648 base32 encoding of SHA-256(input). Node has no
 * base32 codec and 10 bytes of a digest need no padding logic, so it is written here.
 * One-shot `hash` (Node >= 20.12) is ~2x faster than a Hash object per call: a full sync
 * hashes every chain name.
 */
export function chainHash(input: string): string {
  const digest = hash('sha256', input, 'buffer');
  const codes: number[] = [];
  let value = 0;
  let bits = 0;
  // 16 characters x 5 bits = 80 bits = the first 10 bytes.
  for (let i = 0; i < 10; i++) {
    value = ((value << 8) | digest[i]!) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      codes.push(BASE32_CODES[(value >>> (bits - 5)) & 31]!);
      bits -= 5;
    }
  }
  return String.fromCharCode(...codes);
}

/**
 * `prefix` and `hash` as one flat string. `${prefix}${hash}` would be a rope node (a
 * pair of pointers) that every Set/Map lookup and sort comparison of 100,000 chain
 * names walks; a joined string is flat.
 */
function chainName(prefix: string, hash: string): string {
  return [prefix, hash].join('');
}

export interface ServiceChains {
  svc: string;
  svl: string;
  ext: string;
  fw: string;
}

export function serviceChains(nameString: string, protocol: Protocol): ServiceChains {
  const h = chainHash(nameString + protocol.toLowerCase());
  return {
    svc: chainName('KUBE-SVC-', h),
    svl: chainName('KUBE-SVL-', h),
    ext: chainName('KUBE-EXT-', h),
    fw: chainName('KUBE-FW-', h),
  };
}

export function endpointChain(nameString: string, protocol: Protocol, endpoint: string): string {
  return chainName('KUBE-SEP-', chainHash(nameString + protocol.toLowerCase() + endpoint));
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
  for (const prefix of SERVICE_CHAIN_PREFIXES) if (name.startsWith(prefix)) return true;
  return false;
}
