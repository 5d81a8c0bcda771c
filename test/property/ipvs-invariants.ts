/**
 * What must hold of any IPVS-mode render, whatever the cluster (issue 7 §3): checked by the
 * property tests over random clusters, and shown to fail on broken states.
 */
import { expect } from 'vitest';
import { formatRestore, parseRestore } from '../../src/backends/iptables/restore-text.js';
import { IPVS_CHAINS } from '../../src/backends/ipvs/chains.js';
import { formatIptablesSection, formatSection } from '../../src/backends/ipvs/format.js';
import { IPSET_DEFINITIONS, IPSET_NAME_MAX } from '../../src/backends/ipvs/ipsets.js';
import {
  compareAddresses,
  compareRealServers,
  compareVirtualServers,
  type IpvsState,
  virtualServerKey,
} from '../../src/backends/ipvs/state.js';
import type { Snapshot } from '../../src/model/types.js';
import { parseIpvsadmRestore } from '../ipvs/ipvsadm-grammar.js';

const sorted = (list: readonly string[]) => [...list].sort();

export function checkIpvsState(snapshot: Snapshot, state: IpvsState): void {
  const setByName = new Map(state.ipsets.map((s) => [s.name, s]));
  const clusterIPSet = state.ipsets.find((s) => /^KUBE-(6-)?CLUSTER-IP$/.test(s.name))!;
  const ipvsIPsSet = state.ipsets.find((s) => /^KUBE-(6-)?IPVS-IPS$/.test(s.name))!;

  // The 17 sets, in name order, each with sorted unique entries.
  expect(state.ipsets).toHaveLength(IPSET_DEFINITIONS.length);
  expect(state.ipsets.map((s) => s.name)).toEqual(sorted(state.ipsets.map((s) => s.name)));
  for (const set of state.ipsets) {
    expect(set.name.length).toBeLessThanOrEqual(IPSET_NAME_MAX);
    expect(set.entries, set.name).toEqual([...new Set(sorted(set.entries))]);
  }

  // kube-ipvs0 addresses: unique, numeric order, exactly KUBE-IPVS-IPS.
  expect(state.boundAddresses).toEqual([...new Set(state.boundAddresses)].sort(compareAddresses));
  expect(sorted(state.boundAddresses)).toEqual(ipvsIPsSet.entries);

  // Every ClusterIP virtual server: its address bound, its entry in KUBE-CLUSTER-IP.
  const byKey = new Map(state.virtualServers.map((vs) => [virtualServerKey(vs), vs]));
  const allowedEndpoints = new Map<string, Set<string>>();
  const allow = (key: string, endpoints: Iterable<string>) => {
    const set = allowedEndpoints.get(key) ?? new Set<string>();
    for (const e of endpoints) set.add(e);
    allowedEndpoints.set(key, set);
  };
  for (const sps of snapshot.servicePorts) {
    const sp = sps.port;
    const p = sp.protocol.toLowerCase();
    const key = virtualServerKey({ protocol: sp.protocol, address: sp.clusterIP, port: sp.port });
    expect(byKey.has(key), key).toBe(true);
    expect(state.boundAddresses).toContain(sp.clusterIP);
    expect(clusterIPSet.entries).toContain(`${sp.clusterIP},${p}:${sp.port}`);
    const endpoints = sps.endpoints.map((e) => e.endpoint);
    allow(key, endpoints);
    for (const ip of [...sp.externalIPs, ...sp.loadBalancerVIPs])
      allow(virtualServerKey({ protocol: sp.protocol, address: ip, port: sp.port }), endpoints);
    if (sp.nodePort !== 0) allow(`nodePort ${sp.protocol} ${sp.nodePort}`, endpoints);
  }

  // Virtual servers in the ipvs section's order, each key once; real servers likewise.
  expect(state.virtualServers.map(virtualServerKey)).toEqual(
    [...state.virtualServers].sort(compareVirtualServers).map(virtualServerKey),
  );
  expect(byKey.size).toBe(state.virtualServers.length);
  for (const vs of state.virtualServers) {
    expect(vs.realServers).toEqual([...vs.realServers].sort(compareRealServers));
  }

  // Every virtual server belongs to a service port, and its real servers are that port's endpoints.
  for (const vs of state.virtualServers) {
    const key = virtualServerKey(vs);
    const allowed = allowedEndpoints.get(key) ?? allowedEndpoints.get(`nodePort ${vs.protocol} ${vs.port}`);
    expect(allowed, `${key} belongs to no service port`).toBeDefined();
    for (const rs of vs.realServers) {
      expect(rs.weight).toBe(1);
      expect(rs.forwarding).toBe('masq');
      const ep = rs.address.includes(':') ? `[${rs.address}]:${rs.port}` : `${rs.address}:${rs.port}`;
      expect(allowed!.has(ep), `${key} -> ${ep}`).toBe(true);
    }
  }

  // The ipvs section reads back (ipvsadm's grammar; a real server needs its virtual server first).
  const parsed = parseIpvsadmRestore(formatSection(state, 'ipvs'));
  expect(parsed.map((vs) => virtualServerKey(vs))).toEqual(
    state.virtualServers.map((vs) => virtualServerKey(vs)),
  );
  parsed.forEach((vs, i) => {
    const want = state.virtualServers[i]!;
    expect(vs.scheduler).toBe(want.scheduler);
    expect(vs.persistence ?? 0).toBe(want.persistenceSeconds);
    expect(vs.flags).toEqual(want.flags);
    expect(vs.realServers).toEqual(want.realServers.map((rs) => ({ ...rs })));
  });

  // The iptables section: its own normal form, exactly the helper chains, only the family's
  // sets, and a set-matching jump (comment-tagged) only while its set has entries.
  const iptables = formatIptablesSection(state);
  const tables = parseRestore(iptables);
  expect(formatRestore(tables)).toBe(iptables);
  expect(tables.map((t) => t.name)).toEqual(['filter', 'nat']);
  for (const t of tables) {
    expect(sorted([...t.chains.keys()])).toEqual(sorted(IPVS_CHAINS[t.name]));
    for (const rules of t.chains.values()) {
      for (const rule of rules) {
        const m = / --match-set (\S+) /.exec(rule);
        if (!m) continue;
        const set = setByName.get(m[1]!);
        expect(set, rule).toBeDefined();
        const conditional = rule.includes(' -m comment ') && !/^-A KUBE-NODE-PORT -m comment/.test(rule);
        if (conditional) expect(set!.entries.length, rule).toBeGreaterThan(0);
      }
    }
  }
}
