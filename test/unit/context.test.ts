import { describe, expect, it } from 'vitest';
import { formatMark } from '../../src/backends/common/local-traffic.js';
import { buildRenderContext, type IptablesOptions } from '../../src/backends/iptables/context.js';
import { InputError } from '../../src/errors.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { NodeInfo } from '../../src/model/types.js';
import { iptablesOptions, node } from './builders.js';

const INTERFACES = {
  lo: ['127.0.0.1/8', '::1/128'],
  eth0: ['192.168.0.2/24', 'fd00::2/64'],
  eth1: ['10.0.0.5/8', '192.168.0.3/24'],
};

function ctx(overrides: Partial<IptablesOptions>, family: IPFamily = 'IPv4', n: NodeInfo = node()) {
  return buildRenderContext(iptablesOptions({ interfaces: INTERFACES, ...overrides }), family, n);
}

describe('the masquerade mark (spec §9: Go %#08x)', () => {
  it.each([
    [14, '0x00004000'],
    [0, '0x00000001'],
    [31, '0x80000000'],
    [15, '0x00008000'],
  ])('bit %i -> %s', (bit, expected) => {
    expect(formatMark(bit)).toBe(expected);
    expect(ctx({ masqueradeBit: bit }).mark).toBe(expected);
  });

  it.each([32, -1, 1.5, Number.NaN])('refuses bit %s', (bit) => {
    expect(() => formatMark(bit)).toThrow(InputError);
  });
});

describe('localhostNodePorts effective value (spec §13)', () => {
  it.each([
    ['on, nodePortAddresses empty', {}, 'IPv4', true],
    ['off in the config', { localhostNodePorts: false }, 'IPv4', false],
    ['always off for IPv6', {}, 'IPv6', false],
    ['off when the CIDRs hold no IPv4 loopback', { nodePortAddresses: ['192.168.0.0/16'] }, 'IPv4', false],
    ['on with 127.0.0.0/8', { nodePortAddresses: ['192.168.0.0/16', '127.0.0.0/8'] }, 'IPv4', true],
    ['on with a single loopback address', { nodePortAddresses: ['127.0.0.1/32'] }, 'IPv4', true],
    ['on with a CIDR containing 127.0.0.0', { nodePortAddresses: ['126.0.0.0/7'] }, 'IPv4', true],
    ['on with 0.0.0.0/0', { nodePortAddresses: ['192.168.0.0/16', '0.0.0.0/0'] }, 'IPv4', true],
    // only IPv6 CIDRs: the IPv4 proxier matches all, 127.0.0.0/8 included
    ['on when only other-family CIDRs are given', { nodePortAddresses: ['fd00::/8'] }, 'IPv4', true],
    ['off with primary (a /32 of the node IP)', { nodePortAddresses: ['primary'] }, 'IPv4', false],
    ['off with ::1/128 only for IPv6', { nodePortAddresses: ['::1/128'] }, 'IPv6', false],
  ] as const)('%s', (_, overrides, family, expected) => {
    expect(ctx(overrides, family).localhostNodePorts).toBe(expected);
  });
});

describe('nodePortAddresses matching (spec §13)', () => {
  it('matches all when empty, when only the other family is given, or with a /0', () => {
    expect(ctx({}).nodePorts).toEqual({ matchAll: true });
    expect(ctx({ nodePortAddresses: ['fd00::/8'] }).nodePorts).toEqual({ matchAll: true });
    expect(ctx({ nodePortAddresses: ['10.0.0.0/8', '0.0.0.0/0'] }).nodePorts).toEqual({ matchAll: true });
    expect(ctx({ nodePortAddresses: ['::/0'] }, 'IPv6').nodePorts).toEqual({ matchAll: true });
  });

  it('otherwise lists the interface addresses inside the CIDRs, sorted and de-duplicated', () => {
    const c = ctx({
      nodePortAddresses: ['192.168.0.0/16', '10.0.0.0/8', '192.168.0.2/32'],
      interfaces: { ...INTERFACES, eth2: ['192.168.0.2/24'] },
    });
    expect(c.nodePorts).toEqual({ matchAll: false, addresses: ['10.0.0.5', '192.168.0.2', '192.168.0.3'] });
  });

  it('keeps IPv4 loopback only while localhostNodePorts is on', () => {
    const withLoopback = ['127.0.0.0/8', '192.168.0.0/24'];
    expect(ctx({ nodePortAddresses: withLoopback }).nodePorts).toEqual({
      matchAll: false,
      addresses: ['127.0.0.1', '192.168.0.2', '192.168.0.3'],
    });
    expect(ctx({ nodePortAddresses: withLoopback, localhostNodePorts: false }).nodePorts).toEqual({
      matchAll: false,
      addresses: ['192.168.0.2', '192.168.0.3'],
    });
  });

  it('never keeps IPv6 loopback', () => {
    expect(ctx({ nodePortAddresses: ['fd00::/8', '::1/128'] }, 'IPv6').nodePorts).toEqual({
      matchAll: false,
      addresses: ['fd00::2'],
    });
  });

  it('gives no address (so no jump) when nothing matches', () => {
    expect(ctx({ nodePortAddresses: ['203.0.113.0/24'] }).nodePorts).toEqual({
      matchAll: false,
      addresses: [],
    });
  });

  it('canonicalises sloppy CIDRs and interface addresses', () => {
    const c = ctx({
      nodePortAddresses: [' 192.168.000.000/16 '],
      interfaces: { eth0: ['192.168.000.002/24'] },
    });
    expect(c.nodePorts).toEqual({ matchAll: false, addresses: ['192.168.0.2'] });
  });

  it('primary: only the primary node IP of the family', () => {
    const n = node({ ips: ['192.168.0.2', 'fd00::2', '192.168.0.3'] });
    expect(ctx({ nodePortAddresses: ['primary'] }, 'IPv4', n).nodePorts).toEqual({
      matchAll: false,
      addresses: ['192.168.0.2'],
    });
    expect(ctx({ nodePortAddresses: ['primary'] }, 'IPv6', n).nodePorts).toEqual({
      matchAll: false,
      addresses: ['fd00::2'],
    });
  });

  it('primary with no node IP of the family matches all, as kube-proxy does', () => {
    expect(ctx({ nodePortAddresses: ['primary'] }, 'IPv6', node({ ips: ['192.168.0.2'] })).nodePorts).toEqual(
      {
        matchAll: true,
      },
    );
  });

  it('refuses a bad CIDR or interface address with its field', () => {
    expect(() => ctx({ nodePortAddresses: ['10.0.0.0/33'] })).toThrow(/nodePortAddresses\[0\]/);
    expect(() => ctx({ nodePortAddresses: ['10.0.0.0/8'], interfaces: { eth0: ['nope/24'] } })).toThrow(
      /interfaces\.eth0\[0\]/,
    );
  });
});

describe('local-traffic detection (spec §10)', () => {
  it('ClusterCIDR: -s / ! -s with the CIDR of the family', () => {
    expect(ctx({ clusterCIDR: '10.244.0.0/16' }).localDetector).toEqual({
      ifLocal: '-s 10.244.0.0/16',
      ifNotLocal: '! -s 10.244.0.0/16',
    });
    const dual = { clusterCIDR: '10.244.0.0/16,fd00:10:244::/56' };
    expect(ctx(dual, 'IPv6').localDetector).toEqual({
      ifLocal: '-s fd00:10:244::/56',
      ifNotLocal: '! -s fd00:10:244::/56',
    });
    expect(ctx(dual, 'IPv4').localDetector?.ifLocal).toBe('-s 10.244.0.0/16');
  });

  it('ClusterCIDR: no detector without a CIDR of the family', () => {
    expect(ctx({ clusterCIDR: '' }).localDetector).toBeNull();
    expect(ctx({ clusterCIDR: '10.244.0.0/16' }, 'IPv6').localDetector).toBeNull();
  });

  it('ClusterCIDR: prints only canonical text', () => {
    expect(ctx({ clusterCIDR: '010.244.000.000/16' }).localDetector?.ifLocal).toBe('-s 10.244.0.0/16');
    expect(() => ctx({ clusterCIDR: '10.244.0.0/16 -j ACCEPT' })).toThrow(InputError);
  });

  it("NodeCIDR: the node's pod CIDR of the family", () => {
    const n = node({ podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] });
    expect(ctx({ detectLocalMode: 'NodeCIDR' }, 'IPv4', n).localDetector).toEqual({
      ifLocal: '-s 10.244.1.0/24',
      ifNotLocal: '! -s 10.244.1.0/24',
    });
    expect(ctx({ detectLocalMode: 'NodeCIDR' }, 'IPv6', n).localDetector?.ifLocal).toBe(
      '-s fd00:10:244:1::/64',
    );
    expect(ctx({ detectLocalMode: 'NodeCIDR' }, 'IPv4', node({ podCIDRs: [] })).localDetector).toBeNull();
  });

  it('BridgeInterface: -i / ! -i with the bridge', () => {
    expect(ctx({ detectLocalMode: 'BridgeInterface', bridgeInterface: 'cbr0' }).localDetector).toEqual({
      ifLocal: '-i cbr0',
      ifNotLocal: '! -i cbr0',
    });
  });

  it('InterfaceNamePrefix: -i <prefix>+', () => {
    expect(
      ctx({ detectLocalMode: 'InterfaceNamePrefix', interfaceNamePrefix: 'veth' }).localDetector,
    ).toEqual({
      ifLocal: '-i veth+',
      ifNotLocal: '! -i veth+',
    });
  });

  it.each([
    ['BridgeInterface', { bridgeInterface: '' }],
    ['BridgeInterface', { bridgeInterface: 'br 0' }],
    ['BridgeInterface', { bridgeInterface: 'br0\n-A KUBE-SERVICES -j ACCEPT' }],
    ['BridgeInterface', { bridgeInterface: 'br"0' }],
    ['BridgeInterface', { bridgeInterface: 'a-very-long-bridge' }],
    ['InterfaceNamePrefix', { interfaceNamePrefix: '' }],
    ['InterfaceNamePrefix', { interfaceNamePrefix: 'veth+' }],
    ['InterfaceNamePrefix', { interfaceNamePrefix: 'fifteen-chars-x' }],
  ] as const)('%s refuses %j', (mode, overrides) => {
    expect(() => ctx({ detectLocalMode: mode, ...overrides })).toThrow(InputError);
  });
});

describe('the rest of the context', () => {
  it('takes the primary node IP per family', () => {
    const n = node({ ips: ['fd00::2', '192.168.0.2', '192.168.0.3'] });
    expect(ctx({}, 'IPv4', n).nodeIP).toBe('192.168.0.2');
    expect(ctx({}, 'IPv6', n).nodeIP).toBe('fd00::2');
    // no node IP of the family: kube-proxy falls back to the family's loopback address
    expect(ctx({}, 'IPv6', node({ ips: ['192.168.0.2'] })).nodeIP).toBe('::1');
    expect(ctx({}, 'IPv4', node({ ips: [] })).nodeIP).toBe('127.0.0.1');
  });

  it('passes machine features through', () => {
    const c = ctx({
      randomFully: true,
      nfacct: ['ct_state_invalid_dropped_pkts'],
      tcpBeLiberal: true,
      masqueradeAll: true,
    });
    expect(c).toMatchObject({
      family: 'IPv4',
      randomFully: true,
      nfacctInvalid: true,
      nfacctLocalhost: false,
      tcpBeLiberal: true,
      masqueradeAll: true,
    });
    expect(ctx({ nfacct: ['localhost_nps_accepted_pkts'] }).nfacctLocalhost).toBe(true);
  });
});
