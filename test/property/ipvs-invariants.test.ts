/**
 * The IPVS invariant checker must fail on broken states, or the property tests prove nothing.
 * Each case breaks a known-good render in one way.
 */
import { describe, expect, it } from 'vitest';
import type { IpvsState } from '../../src/backends/ipvs/state.js';
import { portState, render, snapshot } from '../ipvs/builders.js';
import { endpoint } from '../unit/builders.js';
import { checkIpvsState } from './ipvs-invariants.js';

const ports = [
  portState(
    { nodePort: 30080, loadBalancerVIPs: ['198.51.100.7'], loadBalancerSourceRanges: ['203.0.113.0/24'] },
    [endpoint('10.180.0.1', { local: true, port: 8080 })],
  ),
];
const good = () => render(ports, { interfaces: {} });

function breaks(edit: (state: IpvsState) => IpvsState): void {
  expect(() => checkIpvsState(snapshot(ports), edit(good()))).toThrow();
}

describe('checkIpvsState', () => {
  it('passes the good render', () => {
    checkIpvsState(snapshot(ports), good());
  });

  it('fails when a ClusterIP is not bound', () => {
    breaks((s) => ({ ...s, boundAddresses: s.boundAddresses.filter((a) => a !== '172.30.0.41') }));
  });

  it('fails when a real server has another weight, or is not an endpoint of the port', () => {
    breaks((s) => ({
      ...s,
      virtualServers: s.virtualServers.map((vs) => ({
        ...vs,
        realServers: vs.realServers.map((rs) => ({ ...rs, weight: 0 })),
      })),
    }));
    breaks((s) => ({
      ...s,
      virtualServers: s.virtualServers.map((vs) => ({
        ...vs,
        realServers: [{ address: '10.9.9.9', port: 1, weight: 1, forwarding: 'masq' as const }],
      })),
    }));
  });

  it('fails on a virtual server of no service port, and on virtual servers out of order', () => {
    breaks((s) => ({
      ...s,
      virtualServers: [...s.virtualServers, { ...s.virtualServers[0]!, address: '10.99.0.1' }],
    }));
    breaks((s) => ({ ...s, virtualServers: [...s.virtualServers].reverse() }));
  });

  it('fails on a conditional rule whose set is empty', () => {
    breaks((s) => ({
      ...s,
      ipsets: s.ipsets.map((set) => (set.name === 'KUBE-LOAD-BALANCER-FW' ? { ...set, entries: [] } : set)),
    }));
  });
});
