import { describe, expect, it } from 'vitest';
import { categorizeEndpoints, isExternallyAccessible, ZONE_LABEL } from '../../src/model/categorize.js';
import { NONE } from '../../src/model/collections.js';
import type { Endpoint, ServicePort } from '../../src/model/types.js';
import {
  endpoint,
  endpointStrings as eps,
  NODE,
  NOT_READY,
  NOT_SERVING_TERMINATING,
  node,
  READY,
  SERVING_TERMINATING,
  servicePort,
} from './builders.js';

const GATE_ON = { preferSameNode: true };
const GATE_OFF = { preferSameNode: false };
const inZoneA = node({ labels: { [ZONE_LABEL]: 'zone-a' } });

function categorize(sp: ServicePort, list: Endpoint[], n = node(), gate = GATE_ON) {
  return categorizeEndpoints(sp, list, n, gate);
}

// Sorted by endpoint string, as mergeSlices hands them over.
const sorted = (list: Endpoint[]) => [...list].sort((a, b) => (a.endpoint < b.endpoint ? -1 : 1));

describe('which endpoint lists a service port uses (spec §1 derived flags)', () => {
  it.each([
    // [description, service port, usesCluster, usesLocal]
    ['iTP=Cluster, eTP=Cluster, ClusterIP only', {}, true, false],
    ['iTP=Local, not externally accessible', { internalPolicyLocal: true }, false, true],
    ['iTP=Local with a NodePort', { internalPolicyLocal: true, nodePort: 30001 }, true, true],
    ['eTP=Local with a NodePort', { externalPolicyLocal: true, nodePort: 30001 }, true, true],
    ['eTP=Local with an LB VIP', { externalPolicyLocal: true, loadBalancerVIPs: ['192.0.2.1'] }, true, true],
    ['eTP=Local with an externalIP', { externalPolicyLocal: true, externalIPs: ['192.0.2.1'] }, true, true],
    // eTP=Local on a NodePort Service without an allocated nodePort: not externally accessible here.
    ['eTP=Local without nodePort, VIP or externalIP', { externalPolicyLocal: true }, true, false],
    [
      'iTP=Local and eTP=Local, ClusterIP only',
      { internalPolicyLocal: true, externalPolicyLocal: true },
      false,
      true,
    ],
  ] as const)('%s', (_, overrides, usesCluster, usesLocal) => {
    const sel = categorize(servicePort(overrides), [endpoint('10.0.0.1', READY)]);
    expect(sel.usesClusterEndpoints).toBe(usesCluster);
    expect(sel.usesLocalEndpoints).toBe(usesLocal);
  });

  it('externally accessible = nodePort, an LB VIP or an externalIP', () => {
    expect(isExternallyAccessible(servicePort())).toBe(false);
    expect(isExternallyAccessible(servicePort({ nodePort: 30000 }))).toBe(true);
    expect(isExternallyAccessible(servicePort({ loadBalancerVIPs: ['192.0.2.1'] }))).toBe(true);
    expect(isExternallyAccessible(servicePort({ externalIPs: ['192.0.2.1'] }))).toBe(true);
  });
});

describe('spec §2.2 step 1: cluster endpoints', () => {
  const sp = servicePort();

  it('are the ready endpoints; allReachable = cluster; no local list', () => {
    const list = sorted([
      endpoint('10.0.0.1', READY),
      endpoint('10.0.0.2', SERVING_TERMINATING),
      endpoint('10.0.0.3', { ...READY, local: true }),
      endpoint('10.0.0.4', NOT_READY),
    ]);
    const sel = categorize(sp, list);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80', '10.0.0.3:80']);
    expect(sel.local).toEqual([]);
    expect(sel.allReachable).toBe(sel.cluster);
    expect(sel.hasEndpoints).toBe(true);
    expect(sel.topologyFiltered).toBe(false);
  });

  it('share storage: all ready is the endpoint list itself, nothing is the one empty list', () => {
    const allReady = sorted([endpoint('10.0.0.1', READY), endpoint('10.0.0.2', READY)]);
    const sel = categorize(servicePort({ externalPolicyLocal: true, nodePort: 30001 }), allReady);
    expect(sel.cluster).toBe(allReady);
    expect(sel.local).toBe(NONE);
    const partly = sorted([endpoint('10.0.0.1', READY), endpoint('10.0.0.2', NOT_READY)]);
    const own = categorize(sp, partly).cluster;
    expect(own).not.toBe(partly);
    expect(eps(own)).toEqual(['10.0.0.1:80']);
    expect(partly).toHaveLength(2);
  });

  it('fall back to all serving-and-terminating endpoints when none is ready', () => {
    const list = sorted([
      endpoint('10.0.0.1', SERVING_TERMINATING),
      endpoint('10.0.0.2', NOT_SERVING_TERMINATING),
      endpoint('10.0.0.3', { ...SERVING_TERMINATING, local: true }),
      endpoint('10.0.0.4', NOT_READY),
    ]);
    const sel = categorize(sp, list);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80', '10.0.0.3:80']);
    expect(sel.hasEndpoints).toBe(true);
  });

  it('do not fall back while any endpoint is ready', () => {
    const list = sorted([endpoint('10.0.0.1', SERVING_TERMINATING), endpoint('10.0.0.2', READY)]);
    expect(eps(categorize(sp, list).cluster)).toEqual(['10.0.0.2:80']);
  });

  it('serving but not terminating (and not ready) is not a fallback endpoint', () => {
    const list = [endpoint('10.0.0.1', { ready: false, serving: true, terminating: false })];
    const sel = categorize(sp, list);
    expect(sel.cluster).toEqual([]);
    expect(sel.hasEndpoints).toBe(false);
  });

  it('none usable: no endpoints at all (spec §11)', () => {
    const sel = categorize(sp, [
      endpoint('10.0.0.1', NOT_READY),
      endpoint('10.0.0.2', NOT_SERVING_TERMINATING),
    ]);
    expect(sel).toMatchObject({ cluster: [], local: [], allReachable: [], hasEndpoints: false });
    expect(categorize(sp, []).hasEndpoints).toBe(false);
  });
});

describe('spec §2.2 step 2: local endpoints', () => {
  const itpLocal = servicePort({ internalPolicyLocal: true });

  it('iTP=Local: local = local ready endpoints, allReachable = local, no cluster list', () => {
    const list = sorted([
      endpoint('10.0.0.1', READY),
      endpoint('10.0.0.2', { ...READY, local: true }),
      endpoint('10.0.0.3', { ...SERVING_TERMINATING, local: true }),
    ]);
    const sel = categorize(itpLocal, list);
    expect(sel.cluster).toEqual([]);
    expect(eps(sel.local)).toEqual(['10.0.0.2:80']);
    expect(sel.allReachable).toBe(sel.local);
    expect(sel.hasEndpoints).toBe(true);
  });

  it('iTP=Local with only remote ready endpoints: hasEndpoints but an empty local list', () => {
    const sel = categorize(itpLocal, [endpoint('10.0.0.1', READY)]);
    expect(sel.hasEndpoints).toBe(true);
    expect(sel.local).toEqual([]);
    expect(sel.allReachable).toEqual([]);
  });

  it('a remote serving-and-terminating endpoint alone also sets hasEndpoints', () => {
    const sel = categorize(itpLocal, [endpoint('10.0.0.1', SERVING_TERMINATING)]);
    expect(sel.hasEndpoints).toBe(true);
    expect(sel.local).toEqual([]);
  });

  it('neither ready nor serving-and-terminating anywhere: no endpoints', () => {
    const sel = categorize(itpLocal, [endpoint('10.0.0.1', { ...NOT_SERVING_TERMINATING, local: true })]);
    expect(sel.hasEndpoints).toBe(false);
    expect(sel.local).toEqual([]);
  });

  it('falls back to local serving-and-terminating endpoints when no local one is ready (§12)', () => {
    const list = sorted([
      endpoint('10.0.0.1', READY),
      endpoint('10.0.0.2', { ...SERVING_TERMINATING, local: true }),
      endpoint('10.0.0.3', { ...NOT_SERVING_TERMINATING, local: true }),
    ]);
    expect(eps(categorize(itpLocal, list).local)).toEqual(['10.0.0.2:80']);
  });
});

describe('spec §2.2 step 3: allReachable with both lists (eTP=Local, externally accessible)', () => {
  const etpLocal = servicePort({ externalPolicyLocal: true, nodePort: 30001 });

  it('is the cluster list when local came from ready endpoints and no topology applied', () => {
    const list = sorted([endpoint('10.0.0.1', READY), endpoint('10.0.0.2', { ...READY, local: true })]);
    const sel = categorize(etpLocal, list);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(eps(sel.local)).toEqual(['10.0.0.2:80']);
    expect(sel.allReachable).toBe(sel.cluster);
  });

  it('is the cluster list when there are no local endpoints at all', () => {
    const sel = categorize(etpLocal, [endpoint('10.0.0.1', READY)]);
    expect(sel.local).toEqual([]);
    expect(eps(sel.allReachable)).toEqual(['10.0.0.1:80']);
    expect(sel.hasEndpoints).toBe(true);
  });

  it('§12: local serving-and-terminating endpoints serve external traffic even when remote ready ones exist', () => {
    const list = sorted([
      endpoint('10.0.0.9', READY),
      endpoint('10.0.0.1', { ...SERVING_TERMINATING, local: true }),
    ]);
    const sel = categorize(etpLocal, list);
    expect(eps(sel.cluster)).toEqual(['10.0.0.9:80']);
    expect(eps(sel.local)).toEqual(['10.0.0.1:80']);
    // the union of both, sorted by endpoint string
    expect(eps(sel.allReachable)).toEqual(['10.0.0.1:80', '10.0.0.9:80']);
  });

  it('§12: with nothing ready anywhere, both lists fall back independently', () => {
    const list = sorted([
      endpoint('10.0.0.1', SERVING_TERMINATING),
      endpoint('10.0.0.2', { ...SERVING_TERMINATING, local: true }),
    ]);
    const sel = categorize(etpLocal, list);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(eps(sel.local)).toEqual(['10.0.0.2:80']);
    expect(eps(sel.allReachable)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
  });

  it('is the union when topology narrowed the cluster list', () => {
    const list = sorted([
      endpoint('10.0.0.1', { ...READY, zoneHints: ['zone-a'] }),
      endpoint('10.0.0.2', { ...READY, zoneHints: ['zone-b'] }),
      endpoint('10.0.0.3', { ...READY, zoneHints: ['zone-b'], local: true }),
    ]);
    const sel = categorize(etpLocal, list, inZoneA);
    expect(sel.topologyFiltered).toBe(true);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80']);
    expect(eps(sel.local)).toEqual(['10.0.0.3:80']);
    expect(eps(sel.allReachable)).toEqual(['10.0.0.1:80', '10.0.0.3:80']);
  });

  it('iTP=Local with a NodePort (eTP=Cluster): both lists; allReachable is the cluster superset', () => {
    const sp = servicePort({ internalPolicyLocal: true, nodePort: 30001 });
    const list = sorted([endpoint('10.0.0.1', READY), endpoint('10.0.0.2', { ...READY, local: true })]);
    const sel = categorize(sp, list);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(eps(sel.local)).toEqual(['10.0.0.2:80']);
    expect(sel.allReachable).toBe(sel.cluster);
  });
});

describe('spec §2.3 topology', () => {
  const sp = servicePort();

  it('zone hints: keeps the endpoints hinted for this node zone', () => {
    const list = sorted([
      endpoint('10.0.0.1', { zoneHints: ['zone-a'] }),
      endpoint('10.0.0.2', { zoneHints: ['zone-b'] }),
      endpoint('10.0.0.3', { zoneHints: ['zone-a', 'zone-b'] }),
    ]);
    const sel = categorize(sp, list, inZoneA);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80', '10.0.0.3:80']);
    expect(sel.topologyFiltered).toBe(true);
    expect(sel.allReachable).toBe(sel.cluster);
  });

  it('zone hints: no filtering unless every ready endpoint has some', () => {
    const list = sorted([endpoint('10.0.0.1', { zoneHints: ['zone-a'] }), endpoint('10.0.0.2')]);
    const sel = categorize(sp, list, inZoneA);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(sel.topologyFiltered).toBe(false);
  });

  it('zone hints: endpoints that are not ready do not need hints', () => {
    const list = sorted([
      endpoint('10.0.0.1', { zoneHints: ['zone-a'] }),
      endpoint('10.0.0.2', { zoneHints: ['zone-b'] }),
      endpoint('10.0.0.3', SERVING_TERMINATING),
    ]);
    expect(eps(categorize(sp, list, inZoneA).cluster)).toEqual(['10.0.0.1:80']);
  });

  it('zone hints: no filtering when none is hinted for this zone', () => {
    const list = sorted([
      endpoint('10.0.0.1', { zoneHints: ['zone-b'] }),
      endpoint('10.0.0.2', { zoneHints: ['zone-c'] }),
    ]);
    const sel = categorize(sp, list, inZoneA);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(sel.topologyFiltered).toBe(false);
  });

  it('zone hints: no filtering when the node has no zone label', () => {
    const list = sorted([
      endpoint('10.0.0.1', { zoneHints: ['zone-a'] }),
      endpoint('10.0.0.2', { zoneHints: ['zone-b'] }),
    ]);
    expect(categorize(sp, list, node()).topologyFiltered).toBe(false);
  });

  it('topology applies to ready endpoints only: the terminating fallback ignores hints', () => {
    const list = sorted([
      endpoint('10.0.0.1', { ...SERVING_TERMINATING, zoneHints: ['zone-b'] }),
      endpoint('10.0.0.2', { ...SERVING_TERMINATING, zoneHints: ['zone-a'] }),
    ]);
    const sel = categorize(sp, list, inZoneA);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(sel.topologyFiltered).toBe(false);
  });

  it('node hints with the PreferSameTrafficDistribution gate on: keeps the endpoints hinted for this node', () => {
    const list = sorted([
      endpoint('10.0.0.1', { nodeHints: [NODE], zoneHints: ['zone-b'] }),
      endpoint('10.0.0.2', { nodeHints: ['node-2'], zoneHints: ['zone-a'] }),
    ]);
    const sel = categorize(sp, list, inZoneA, GATE_ON);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80']);
    expect(sel.topologyFiltered).toBe(true);
  });

  it('node hints with the gate off: zone hints decide instead', () => {
    const list = sorted([
      endpoint('10.0.0.1', { nodeHints: [NODE], zoneHints: ['zone-b'] }),
      endpoint('10.0.0.2', { nodeHints: ['node-2'], zoneHints: ['zone-a'] }),
    ]);
    expect(eps(categorize(sp, list, inZoneA, GATE_OFF).cluster)).toEqual(['10.0.0.2:80']);
  });

  it('node hints with the gate off and no zone hints: no filtering', () => {
    const list = sorted([
      endpoint('10.0.0.1', { nodeHints: [NODE] }),
      endpoint('10.0.0.2', { nodeHints: ['node-2'] }),
    ]);
    const sel = categorize(sp, list, inZoneA, GATE_OFF);
    expect(eps(sel.cluster)).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    expect(sel.topologyFiltered).toBe(false);
  });

  it('gate on, but not every ready endpoint has node hints: falls through to zone hints', () => {
    const list = sorted([
      endpoint('10.0.0.1', { nodeHints: [NODE], zoneHints: ['zone-b'] }),
      endpoint('10.0.0.2', { zoneHints: ['zone-a'] }),
    ]);
    expect(eps(categorize(sp, list, inZoneA, GATE_ON).cluster)).toEqual(['10.0.0.2:80']);
  });

  it('gate on, no endpoint hinted for this node: falls through to zone hints', () => {
    const list = sorted([
      endpoint('10.0.0.1', { nodeHints: ['node-3'], zoneHints: ['zone-b'] }),
      endpoint('10.0.0.2', { nodeHints: ['node-2'], zoneHints: ['zone-a'] }),
    ]);
    expect(eps(categorize(sp, list, inZoneA, GATE_ON).cluster)).toEqual(['10.0.0.2:80']);
  });

  it('gate on, node hints without a match and no zone hints: no filtering', () => {
    const list = sorted([
      endpoint('10.0.0.1', { nodeHints: ['node-3'] }),
      endpoint('10.0.0.2', { nodeHints: ['node-2'] }),
    ]);
    expect(categorize(sp, list, inZoneA, GATE_ON).topologyFiltered).toBe(false);
  });

  it('topology does not touch the local list (iTP=Local)', () => {
    const list = sorted([
      endpoint('10.0.0.1', { local: true, zoneHints: ['zone-b'] }),
      endpoint('10.0.0.2', { zoneHints: ['zone-a'] }),
    ]);
    const sel = categorize(servicePort({ internalPolicyLocal: true }), list, inZoneA);
    expect(eps(sel.local)).toEqual(['10.0.0.1:80']);
    expect(sel.topologyFiltered).toBe(false);
  });
});
