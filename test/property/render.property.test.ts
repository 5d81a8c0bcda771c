import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildRenderContext, type IptablesOptions } from '../../src/backends/iptables/context.js';
import {
  addStaleChains,
  FULL_SYNC,
  IptablesRenderer,
  renderIptables,
  type SyncScope,
} from '../../src/backends/iptables/render.js';
import type { TopologyOptions } from '../../src/model/categorize.js';
import type { IPFamily } from '../../src/model/ip.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../src/model/snapshot.js';
import { ObjectStore } from '../../src/model/store.js';
import type { NodeInfo } from '../../src/model/types.js';
import { add, del, type Raw, serviceObject } from '../unit/objects.js';
import {
  bulkService,
  type Cluster,
  clusterArb,
  events,
  NODE_NAME,
  nodeArb,
  optionsArb,
  serviceBodyArb,
  sliceArb,
  topologyArb,
} from './arbitraries.js';
import {
  checkFullRender,
  checkNormalForm,
  checkTargetsDeclared,
  isFixedChain,
  readText,
  rulesOf,
} from './invariants.js';

const FAMILIES: IPFamily[] = ['IPv4', 'IPv6'];

interface World {
  store: ObjectStore;
  node: NodeInfo;
  options: IptablesOptions;
  topology: TopologyOptions;
}

function world(
  objects: readonly Raw[],
  nodeObj: Raw,
  options: IptablesOptions,
  topology: TopologyOptions,
): World {
  const store = new ObjectStore(NODE_NAME);
  for (const e of events([...objects, nodeObj])) store.apply(e);
  return { store, node: nodeInfoFrom(NODE_NAME, store.node), options, topology };
}

function renderFamily(w: World, family: IPFamily, scope?: SyncScope) {
  const snapshot = new SnapshotBuilder(family, w.topology).build(w.store, w.node);
  const ctx = buildRenderContext(w.options, family, w.node);
  return { snapshot, ctx, render: renderIptables(snapshot, ctx, scope) };
}

const inputs = fc.record({
  cluster: clusterArb,
  node: nodeArb,
  options: optionsArb,
  topology: topologyArb,
  bulk: fc.oneof({ weight: 12, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

const withBulk = (cluster: Cluster, bulk: boolean) =>
  bulk ? [...cluster.objects, ...bulkService()] : cluster.objects;

describe('renderIptables invariants over random clusters', () => {
  it('(a-e) full renders: targets declared, SEPs reachable, equal shares, normal form, well-formed lines', () => {
    fc.assert(
      fc.property(inputs, ({ cluster, node, options, topology, bulk }) => {
        const w = world(withBulk(cluster, bulk), node, options, topology);
        for (const family of FAMILIES) {
          const { render } = renderFamily(w, family);
          checkFullRender(render);
          expect(render.largeCluster).toBe(bulk);
          expect(render.staleChains).toEqual([]);
          // the declared service chains are exactly the active ones
          const p = readText(render.text);
          expect(render.stats.restoreLines).toBe(render.text.split('\n').length - 1);
          const declaredService = p.declared.nat!.filter((c) => !isFixedChain('nat', c));
          expect(new Set(declaredService)).toEqual(render.activeChains);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('(f) partial renders: all services changed = the full render; none changed = fixed chains only', () => {
    fc.assert(
      fc.property(inputs, fc.infiniteStream(fc.boolean()), ({ cluster, node, options, topology }, coin) => {
        const w = world(cluster.objects, node, options, topology);
        for (const family of FAMILIES) {
          const { snapshot, ctx, render: full } = renderFamily(w, family);
          const fullText = readText(full.text);
          const allKeys = new Set(snapshot.servicePorts.map((sp) => sp.port.serviceKey));

          const everything = renderIptables(snapshot, ctx, {
            full: false,
            changedServices: allKeys,
            existingChains: null,
          });
          expect(readText(everything.text).declared).toEqual(fullText.declared);
          expect(everything.text).toBe(full.text);

          const nothing = renderIptables(snapshot, ctx, {
            full: false,
            changedServices: new Set(),
            existingChains: full.activeChains,
          });
          const p = readText(nothing.text);
          checkNormalForm(nothing.text);
          checkTargetsDeclared(p, full.activeChains);
          expect(
            p.declared.nat!.every((c) => isFixedChain('nat', c)),
            p.declared.nat!.join(' '),
          ).toBe(true);
          expect(p.declared.filter).toEqual(fullText.declared.filter);
          expect(p.rules.filter((r) => r.table === 'filter')).toEqual(
            fullText.rules.filter((r) => r.table === 'filter'),
          );
          for (const chain of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ']) {
            expect(rulesOf(p, 'nat', chain), chain).toEqual(rulesOf(fullText, 'nat', chain));
          }
          expect(nothing.activeChains).toEqual(full.activeChains);

          // Some changed services, and chains left over from an earlier state of the node.
          const changed = new Set([...allKeys].filter(() => coin.next().value));
          const leftovers = [
            'KUBE-SEP-STALESTALESTALE1',
            'KUBE-SVC-GONEGONEGONEGONE',
            'KUBE-SERVICES',
            'OTHER-CHAIN',
          ];
          const existing = new Set([...full.activeChains].filter(() => coin.next().value).concat(leftovers));
          const partial = renderIptables(snapshot, ctx, {
            full: false,
            changedServices: changed,
            existingChains: existing,
          });
          const pp = readText(partial.text);
          checkNormalForm(partial.text);
          checkTargetsDeclared(pp, full.activeChains);
          expect(partial.staleChains).toEqual(['KUBE-SEP-STALESTALESTALE1', 'KUBE-SVC-GONEGONEGONEGONE']);
          // A full render made without the kernel's chains, with the stale ones added after
          // (how a full sync renders while iptables-save runs), is the full render made with them.
          const withExisting = renderIptables(snapshot, ctx, {
            full: true,
            changedServices: new Set(),
            existingChains: existing,
          });
          const staleAfter = renderIptables(snapshot, ctx, FULL_SYNC);
          addStaleChains(staleAfter, existing);
          expect(staleAfter.text).toBe(withExisting.text);
          expect(staleAfter.staleChains).toEqual(withExisting.staleChains);
          expect(staleAfter.stats).toEqual(withExisting.stats);
          expect(pp.deleted.nat).toEqual(partial.staleChains);
          for (const stale of partial.staleChains) {
            expect(pp.declared.nat).toContain(stale);
            expect(rulesOf(pp, 'nat', stale)).toEqual([]);
          }
          // A changed service's chains are written exactly as in the full render.
          for (const chain of pp.declared.nat!) {
            if (isFixedChain('nat', chain) || partial.staleChains.includes(chain)) continue;
            expect(rulesOf(pp, 'nat', chain), chain).toEqual(rulesOf(fullText, 'nat', chain));
          }
          // ...and only those: a render of the changed services alone has the same service chains.
          const changedOnly = renderIptables(
            {
              ...snapshot,
              servicePorts: snapshot.servicePorts.filter((sp) => changed.has(sp.port.serviceKey)),
            },
            ctx,
          );
          const expectedDeclared = changedOnly.activeChains;
          const declaredService = pp.declared.nat!.filter(
            (c) => !isFixedChain('nat', c) && !partial.staleChains.includes(c),
          );
          expect(new Set(declaredService)).toEqual(expectedDeclared);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('(g) rendering is deterministic', () => {
    fc.assert(
      fc.property(inputs, ({ cluster, node, options, topology }) => {
        const a = world(cluster.objects, node, options, topology);
        // the same objects delivered in reverse order
        const b = world([...cluster.objects].reverse(), node, options, topology);
        for (const family of FAMILIES) {
          const first = renderFamily(a, family);
          expect(renderIptables(first.snapshot, first.ctx).text).toBe(first.render.text);
          expect(renderFamily(b, family).render.text).toBe(first.render.text);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe('IptablesRenderer with its identity cache', () => {
  const PORT_NAMES = ['', 'http'];
  const PROTOCOLS = ['TCP', 'UDP'] as const;
  const SERVICES = ['a', 'b', 'c'];

  const serviceStep = fc
    .tuple(fc.constantFrom(...SERVICES), serviceBodyArb(PORT_NAMES, PROTOCOLS))
    .map(([name, body]) => ({ op: 'service' as const, name, body }));
  const sliceStep = fc
    .tuple(fc.constantFrom(...SERVICES), fc.constantFrom('1', '2'), serviceBodyArb(PORT_NAMES, PROTOCOLS))
    .chain(([svc, n, body]) =>
      sliceArb('ns1', svc, `${svc}-${n}`, body, 6).map((object) => ({ op: 'slice' as const, object })),
    );
  const step = fc.oneof(
    { weight: 3, arbitrary: serviceStep },
    { weight: 4, arbitrary: sliceStep },
    {
      weight: 1,
      arbitrary: fc.constantFrom(...SERVICES).map((name) => ({ op: 'deleteService' as const, name })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(...SERVICES), fc.constantFrom('1', '2'))
        .map(([svc, n]) => ({ op: 'deleteSlice' as const, name: `${svc}-${n}` })),
    },
    { weight: 1, arbitrary: fc.nat().map((i) => ({ op: 'redeliver' as const, index: i })) },
    { weight: 1, arbitrary: nodeArb.map((object) => ({ op: 'node' as const, object })) },
  );

  it('gives the same text as a fresh render after every store mutation (full and partial)', () => {
    fc.assert(
      fc.property(
        nodeArb,
        optionsArb,
        topologyArb,
        fc.array(step, { minLength: 1, maxLength: 12 }),
        (nodeObj, options, topology, steps) => {
          const store = new ObjectStore(NODE_NAME);
          store.apply(add(nodeObj));
          const history: Raw[] = [];
          const state = FAMILIES.map((family) => ({
            family,
            builder: new SnapshotBuilder(family, topology),
            renderer: new IptablesRenderer(),
            ctx: null as ReturnType<typeof buildRenderContext> | null,
            ctxKey: '',
            synced: store.versionsSnapshot(),
          }));
          for (const s of steps) {
            let object: Raw;
            if (s.op === 'service')
              object = serviceObject(s.name, { spec: s.body.spec, status: s.body.status });
            else if (s.op === 'slice' || s.op === 'node') object = s.object;
            else if (s.op === 'redeliver')
              object = history.length ? history[s.index % history.length]! : nodeObj;
            else {
              const kind = s.op === 'deleteService' ? 'Service' : 'EndpointSlice';
              store.apply(del({ kind, metadata: { name: s.name, namespace: 'ns1' } }));
              object = { kind: 'none' };
            }
            if (object.kind !== 'none') {
              store.apply(add(object));
              history.push(object);
            }
            const node = nodeInfoFrom(NODE_NAME, store.node);
            for (const f of state) {
              const fresh = buildRenderContext(options, f.family, node);
              // Keep the context object while its content is unchanged, as a sync loop would.
              const key = JSON.stringify(fresh);
              if (key !== f.ctxKey) {
                f.ctx = fresh;
                f.ctxKey = key;
              }
              const ctx = f.ctx!;
              const cached = f.builder.build(store, node);
              const reference = new SnapshotBuilder(f.family, topology).build(store, node);
              expect(f.renderer.render(cached, ctx).text).toBe(renderIptables(reference, ctx).text);

              const scope: SyncScope = {
                full: false,
                changedServices: store.changedSince(f.synced),
                existingChains: null,
              };
              const partial = f.renderer.render(cached, ctx, scope);
              expect(partial.text).toBe(renderIptables(reference, ctx, scope).text);
              checkNormalForm(partial.text);
              f.synced = store.versionsSnapshot();
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('partial syncs continuing from the previous render find the same active and stale chains as a scan', () => {
    fc.assert(
      fc.property(
        nodeArb,
        optionsArb,
        topologyArb,
        fc.array(step, { minLength: 1, maxLength: 12 }),
        (nodeObj, options, topology, steps) => {
          const store = new ObjectStore(NODE_NAME);
          store.apply(add(nodeObj));
          const history: Raw[] = [];
          const state = FAMILIES.map((family) => {
            const builder = new SnapshotBuilder(family, topology);
            const renderer = new IptablesRenderer();
            // One context throughout: a new one would reset the renderer (and the sync goes full).
            const ctx = buildRenderContext(options, family, nodeInfoFrom(NODE_NAME, store.node));
            const previous = renderer.render(builder.build(store, nodeInfoFrom(NODE_NAME, store.node)), ctx);
            return { builder, renderer, ctx, previous, synced: store.versionsSnapshot() };
          });
          for (const s of steps) {
            let object: Raw;
            if (s.op === 'service')
              object = serviceObject(s.name, { spec: s.body.spec, status: s.body.status });
            else if (s.op === 'slice' || s.op === 'node') object = s.object;
            else if (s.op === 'redeliver')
              object = history.length ? history[s.index % history.length]! : nodeObj;
            else {
              const kind = s.op === 'deleteService' ? 'Service' : 'EndpointSlice';
              store.apply(del({ kind, metadata: { name: s.name, namespace: 'ns1' } }));
              object = { kind: 'none' };
            }
            if (object.kind !== 'none') {
              store.apply(add(object));
              history.push(object);
            }
            const node = nodeInfoFrom(NODE_NAME, store.node);
            for (const f of state) {
              const snapshot = f.builder.build(store, node);
              const changedServices = store.changedSince(f.synced);
              // The scan gets a copy: the continuing render updates the previous set in place.
              const existing = new Set(f.previous.activeChains);
              const partial = f.renderer.render(snapshot, f.ctx, {
                full: false,
                changedServices,
                existingChains: f.previous.activeChains,
              });
              const scanned = renderIptables(snapshot, f.ctx, {
                full: false,
                changedServices,
                existingChains: existing,
              });
              expect(partial.text).toBe(scanned.text);
              expect(partial.staleChains).toEqual(scanned.staleChains);
              expect(partial.activeChains).toEqual(scanned.activeChains);
              f.previous = partial;
              f.synced = store.versionsSnapshot();
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
