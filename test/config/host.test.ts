import { describe, expect, it } from 'vitest';
import { type HostFacts, loadHostFacts, neutralHostFacts } from '../../src/config/host.js';
import { InputError } from '../../src/errors.js';
import { parseCIDR } from '../../src/model/ip.js';

function loadError(text: string): InputError {
  try {
    loadHostFacts(text, 'host.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected the host facts to be refused');
}

describe('neutralHostFacts', () => {
  it('has no interfaces, no nfacct counters, no --random-fully, tcpBeLiberal off, no node name or IPs', () => {
    const facts = neutralHostFacts();
    expect(facts).toEqual({
      kind: 'HostFacts',
      interfaces: {},
      iptables: { randomFully: false, nfacct: [] },
      conntrack: { tcpBeLiberal: false },
    });
    expect(facts.nodeName).toBeUndefined();
    expect(facts.nodeIPs).toBeUndefined();
  });
});

describe('loadHostFacts', () => {
  it('reads the documented example', () => {
    const text = `kind: HostFacts
nodeName: node-1
nodeIPs: [192.168.0.2]
interfaces: {lo: [127.0.0.1/8, "::1/128"], eth0: [192.168.0.2/24]}
iptables: {randomFully: false, nfacct: [ct_state_invalid_dropped_pkts, localhost_nps_accepted_pkts]}
conntrack: {tcpBeLiberal: false}
`;
    const expected: HostFacts = {
      kind: 'HostFacts',
      nodeName: 'node-1',
      nodeIPs: ['192.168.0.2'],
      interfaces: { lo: ['127.0.0.1/8', '::1/128'], eth0: ['192.168.0.2/24'] },
      iptables: {
        randomFully: false,
        nfacct: ['ct_state_invalid_dropped_pkts', 'localhost_nps_accepted_pkts'],
      },
      conntrack: { tcpBeLiberal: false },
    };
    expect(loadHostFacts(text, 'host.yaml')).toEqual(expected);
  });

  it('fills absent keys with the neutral facts', () => {
    expect(loadHostFacts('kind: HostFacts\n', 'host.yaml')).toEqual(neutralHostFacts());
    const facts = loadHostFacts('kind: HostFacts\niptables:\n  randomFully: true\n', 'host.yaml');
    expect(facts.iptables).toEqual({ randomFully: true, nfacct: [] });
    expect(facts.conntrack).toEqual({ tcpBeLiberal: false });
    expect('nodeName' in facts).toBe(false);
    expect('nodeIPs' in facts).toBe(false);
  });

  it('accepts dual-stack node IPs and IPv6 interface addresses', () => {
    const facts = loadHostFacts(
      'kind: HostFacts\nnodeIPs: [192.168.0.2, "fd00::2"]\ninterfaces:\n  eth0: [192.168.0.2/24, "fd00::2/64"]\n',
      'host.yaml',
    );
    expect(facts.nodeIPs).toEqual(['192.168.0.2', 'fd00::2']);
    expect(facts.interfaces['eth0']?.map((a) => parseCIDR(a)?.text)).toEqual(['192.168.0.0/24', 'fd00::/64']);
  });

  it('requires kind: HostFacts', () => {
    expect(loadError('nodeName: node-1\n').message).toMatch(/^host\.yaml:1: kind: must be HostFacts/);
    expect(loadError('kind: KubeProxyConfiguration\n').message).toMatch(
      /^host\.yaml:1: kind: must be HostFacts/,
    );
  });

  it('names the interface address that has no valid prefix, with its line', () => {
    const text = 'kind: HostFacts\ninterfaces:\n  lo:\n  - 127.0.0.1/8\n  eth0:\n  - 192.168.0.2\n';
    expect(loadError(text).message).toBe(
      'host.yaml:6: interfaces.eth0[0]: must be an IPv4 or IPv6 address with a prefix length, like 192.168.0.2/24 (got "192.168.0.2")',
    );
  });

  it.each(['10.0.0.1/33', 'fd00::1/129', '10.0.0.300/8', 'fe80::1%eth0/64', '10.0.0.1/-1', '10.0.0.1/ 8'])(
    'refuses the interface address %s',
    (address) => {
      expect(loadError(`kind: HostFacts\ninterfaces: {eth0: ["${address}"]}\n`).message).toMatch(
        /^host\.yaml:2: interfaces\.eth0\[0\]: must be an IPv4 or IPv6 address with a prefix length/,
      );
    },
  );

  it('names the node IP that is not an address', () => {
    expect(loadError('kind: HostFacts\nnodeIPs:\n- 192.168.0.2\n- 192.168.0.0/24\n').message).toBe(
      'host.yaml:4: nodeIPs[1]: must be an IPv4 or IPv6 address (got "192.168.0.0/24")',
    );
  });

  it('refuses unknown keys (the format is Switchboard’s own, so a typo is an error)', () => {
    expect(loadError('kind: HostFacts\nnodeIP: [192.168.0.2]\n').message).toMatch(
      /^host\.yaml:2: nodeIP: unknown field \(known: kind, nodeName, nodeIPs/,
    );
    expect(loadError('kind: HostFacts\niptables:\n  randomfully: true\n').message).toBe(
      'host.yaml:3: iptables.randomfully: unknown field',
    );
  });

  it('refuses an nfacct counter kube-proxy does not use', () => {
    expect(loadError('kind: HostFacts\niptables: {nfacct: [ct_invalid]}\n').message).toMatch(
      /^host\.yaml:2: iptables\.nfacct\[0\]: unknown nfacct counter "ct_invalid"/,
    );
  });

  it('refuses a wrongly typed value', () => {
    expect(loadError('kind: HostFacts\nconntrack:\n  tcpBeLiberal: 1\n').message).toMatch(
      /^host\.yaml:3: conntrack\.tcpBeLiberal: .*expected boolean/,
    );
  });

  it('refuses an empty file and a non-mapping document', () => {
    expect(() => loadHostFacts('', 'host.yaml')).toThrow(/^host\.yaml: no YAML document found/);
    expect(() => loadHostFacts('[a, b]\n', 'host.yaml')).toThrow(
      'host.yaml:1: expected a HostFacts mapping, got a list',
    );
  });
});
