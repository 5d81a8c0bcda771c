import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  chainHash,
  endpointChain,
  isServiceChain,
  serviceChains,
} from '../../src/backends/iptables/chain-names.js';

/** The spec's own reference (§3): base32 of the whole digest, cut to 16 characters. */
function referenceHash(s: string): string {
  const digest = createHash('sha256').update(s).digest();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const byte of digest) bits += byte.toString(2).padStart(8, '0');
  let out = '';
  for (let i = 0; i + 5 <= bits.length; i += 5) out += alphabet[Number.parseInt(bits.slice(i, i + 5), 2)];
  return out.slice(0, 16);
}

describe('chainHash (spec §3 worked examples)', () => {
  it.each([
    ['ns1/svc1:p80tcp', 'XPGD46QRK7WJZT7O'],
    ['ns1/svc1:p80tcp10.180.0.1:80', 'SXIVWICOYRO3J4NJ'],
    ['ns1/svc1tcp', 'AQI2S6QIMU7PVVRP'],
    ['ns2/svc2:p80tcp', 'GNZBNJ2PO5MGZ6GT'],
    ['ns1/svc1:p80tcp[ff06::c1]:80', 'LIGRYQQLSZN4UWQ5'],
  ])('%s -> %s', (input, expected) => {
    expect(chainHash(input)).toBe(expected);
  });

  it('agrees with a bit-string base32 of the digest for many inputs', () => {
    for (let i = 0; i < 500; i++) {
      const input = `ns${i % 7}/svc-${i}:p${i % 13}${['tcp', 'udp', 'sctp'][i % 3]}10.${i % 256}.0.1:${i}`;
      expect(chainHash(input)).toBe(referenceHash(input));
    }
  });

  it('hashes UTF-8 bytes (a name the API refuses still hashes like Go would)', () => {
    expect(chainHash('ns/ünïcode')).toBe(referenceHash('ns/ünïcode'));
  });
});

describe('chain names', () => {
  it('names the per-service chains from `<N>` + lower-case protocol', () => {
    expect(serviceChains('ns1/svc1:p80', 'TCP')).toEqual({
      svc: 'KUBE-SVC-XPGD46QRK7WJZT7O',
      svl: 'KUBE-SVL-XPGD46QRK7WJZT7O',
      ext: 'KUBE-EXT-XPGD46QRK7WJZT7O',
      fw: 'KUBE-FW-XPGD46QRK7WJZT7O',
    });
    expect(serviceChains('ns1/svc1', 'TCP').svc).toBe('KUBE-SVC-AQI2S6QIMU7PVVRP');
    expect(serviceChains('ns2/svc2:p80', 'TCP').svc).toBe('KUBE-SVC-GNZBNJ2PO5MGZ6GT');
  });

  it('names endpoint chains from `<N>` + protocol + endpoint string, brackets for IPv6', () => {
    expect(endpointChain('ns1/svc1:p80', 'TCP', '10.180.0.1:80')).toBe('KUBE-SEP-SXIVWICOYRO3J4NJ');
    expect(endpointChain('ns1/svc1:p80', 'TCP', '[ff06::c1]:80')).toBe('KUBE-SEP-LIGRYQQLSZN4UWQ5');
  });

  it('gives the same port different chains per protocol', () => {
    const tcp = serviceChains('ns1/svc1:dns', 'TCP').svc;
    const udp = serviceChains('ns1/svc1:dns', 'UDP').svc;
    const sctp = serviceChains('ns1/svc1:dns', 'SCTP').svc;
    expect(new Set([tcp, udp, sctp]).size).toBe(3);
    expect(udp).toBe(`KUBE-SVC-${referenceHash('ns1/svc1:dnsudp')}`);
    expect(sctp).toBe(`KUBE-SVC-${referenceHash('ns1/svc1:dnssctp')}`);
  });

  it('recognises exactly the per-service chain prefixes as service chains', () => {
    for (const c of ['KUBE-SVC-X', 'KUBE-SVL-X', 'KUBE-SEP-X', 'KUBE-FW-X', 'KUBE-EXT-X']) {
      expect(isServiceChain(c), c).toBe(true);
    }
    for (const c of [
      'KUBE-SERVICES',
      'KUBE-NODEPORTS',
      'KUBE-EXTERNAL-SERVICES',
      'KUBE-MARK-MASQ',
      'KUBE-FIREWALL',
    ]) {
      expect(isServiceChain(c), c).toBe(false);
    }
  });
});
