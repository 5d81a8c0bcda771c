/**
 * IPVS mode over random clusters (issue 7 §3): the invariants of ipvs-invariants.ts, a
 * deterministic and cache-independent render, and the sections accepted by the real tools:
 * `ipset restore` and `iptables-restore --test` in a scratch network namespace (this kernel
 * has no xt_ipvs, so the `-m ipvs` rules are left out of that check; the ipvs section is read
 * by ipvsadm's grammar, the kernel check of it runs in a VM).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildIpvsRenderContext, type IpvsOptions } from '../../src/backends/ipvs/context.js';
import { formatIpvsState, formatSection } from '../../src/backends/ipvs/format.js';
import { IpvsRenderer, renderIpvs } from '../../src/backends/ipvs/render.js';
import type { IpvsState } from '../../src/backends/ipvs/state.js';
import { Iptables } from '../../src/kernel/iptables.js';
import type { TopologyOptions } from '../../src/model/categorize.js';
import type { IPFamily } from '../../src/model/ip.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../src/model/snapshot.js';
import { ObjectStore } from '../../src/model/store.js';
import { withScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { add, del, type Raw } from '../unit/objects.js';
import { clusterArb, events, ipvsOptionsArb, NODE_NAME, nodeArb, topologyArb } from './arbitraries.js';
import { checkIpvsState } from './ipvs-invariants.js';

const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];

interface World {
  store: ObjectStore;
  options: IpvsOptions;
  topology: TopologyOptions;
}

function world(
  objects: readonly Raw[],
  nodeObj: Raw,
  options: IpvsOptions,
  topology: TopologyOptions,
): World {
  const store = new ObjectStore(NODE_NAME);
  for (const e of events([...objects, nodeObj])) store.apply(e);
  return { store, options, topology };
}

function renderFamily(w: World, family: IPFamily) {
  const node = nodeInfoFrom(NODE_NAME, w.store.node);
  const snapshot = new SnapshotBuilder(family, w.topology).build(w.store, node);
  const ctx = buildIpvsRenderContext(w.options, family, node);
  return { snapshot, ctx, state: renderIpvs(snapshot, ctx) };
}

const inputs = fc.record({
  cluster: clusterArb,
  node: nodeArb,
  options: ipvsOptionsArb,
  topology: topologyArb,
});

describe('renderIpvs invariants over random clusters', () => {
  it('ClusterIPs bound and in KUBE-CLUSTER-IP, real servers only under their virtual server, weight 1, sections well-formed', () => {
    fc.assert(
      fc.property(inputs, ({ cluster, node, options, topology }) => {
        const w = world(cluster.objects, node, options, topology);
        for (const family of FAMILIES) {
          const { snapshot, state } = renderFamily(w, family);
          checkIpvsState(snapshot, state);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('is deterministic: the same objects in another order give the same text', () => {
    fc.assert(
      fc.property(inputs, ({ cluster, node, options, topology }) => {
        const a = world(cluster.objects, node, options, topology);
        const b = world([...cluster.objects].reverse(), node, options, topology);
        for (const family of FAMILIES) {
          expect(formatIpvsState(renderFamily(b, family).state)).toBe(
            formatIpvsState(renderFamily(a, family).state),
          );
        }
      }),
      { numRuns: 150 },
    );
  });

  it('a long-lived IpvsRenderer gives the one-shot render after every change', () => {
    fc.assert(
      fc.property(
        nodeArb,
        ipvsOptionsArb,
        topologyArb,
        fc.array(clusterArb, { minLength: 2, maxLength: 4 }),
        (nodeObj, options, topology, clusters) => {
          const store = new ObjectStore(NODE_NAME);
          store.apply(add(nodeObj));
          const state = FAMILIES.map((family) => ({
            family,
            builder: new SnapshotBuilder(family, topology),
            renderer: new IpvsRenderer(),
          }));
          let previous: Raw[] = [];
          for (const cluster of clusters) {
            // Replace the cluster: objects that are gone are deleted, the rest added or updated.
            const names = new Set(cluster.objects.map((o) => `${o.kind}/${JSON.stringify(o.metadata)}`));
            for (const o of previous)
              if (!names.has(`${o.kind}/${JSON.stringify(o.metadata)}`)) store.apply(del(o));
            for (const o of cluster.objects) store.apply(add(o));
            previous = cluster.objects;
            const node = nodeInfoFrom(NODE_NAME, store.node);
            for (const f of state) {
              const ctx = buildIpvsRenderContext(options, f.family, node);
              const snapshot = f.builder.build(store, node);
              const fresh = new SnapshotBuilder(f.family, topology).build(store, node);
              expect(formatIpvsState(f.renderer.render(snapshot, ctx))).toBe(
                formatIpvsState(renderIpvs(fresh, ctx)),
              );
            }
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

/** The iptables section without the `-m ipvs` rules, which need xt_ipvs (absent here). */
function withoutIpvsMatch(text: string): string {
  return text
    .split('\n')
    .filter((line) => !line.includes(' -m ipvs '))
    .join('\n');
}

describeKernel('the ipset and iptables sections load into the real tools', () => {
  it('ipset restore and iptables-restore --test accept random renders (both families)', async () => {
    const samples = fc.sample(inputs, { numRuns: 30, seed: 7 });
    await withScratchNetns(async ({ runner }) => {
      const iptables = new Iptables(runner, 'nft');
      for (const { cluster, node, options, topology } of samples) {
        const w = world(cluster.objects, node, options, topology);
        const states: [IPFamily, IpvsState][] = FAMILIES.map((f) => [f, renderFamily(w, f).state]);
        await runner.run('ipset', ['destroy']);
        for (const [, state] of states) {
          await runner.run('ipset', ['restore'], { input: formatSection(state, 'ipset') });
        }
        const saved = await runner.run('ipset', ['save']);
        for (const [family, state] of states) {
          // what was loaded is what was rendered: every set and entry, in ipset save form
          for (const set of state.ipsets) {
            const adds = saved.stdout
              .split('\n')
              .filter((l) => l.startsWith(`add ${set.name} `))
              .map((l) => l.slice(`add ${set.name} `.length));
            expect(adds.sort(), `${family} ${set.name}`).toEqual(set.entries);
          }
          await iptables.restore(family, withoutIpvsMatch(formatSection(state, 'iptables')), {
            test: true,
            counters: false,
          });
        }
      }
    });
  }, 120_000);
});
