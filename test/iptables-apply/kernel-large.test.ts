/**
 * Cold start at scale, real kernel, both backends: a ~1,500-service cluster applied in
 * bounded transactions ends exactly where one transaction does; then one endpoint
 * change is applied as a partial sync (its duration is printed, not asserted).
 */
import { expect, it } from 'vitest';
import { clusterEvents, syntheticCluster } from '../../bench/synthetic-cluster.js';
import { syntheticConfig, syntheticHost } from '../../bench/synthetic-config.js';
import { IptablesBackend } from '../../src/backends/iptables/backend.js';
import type { ChunkingOptions } from '../../src/backends/iptables/chunking.js';
import type { Backend } from '../../src/kernel/backend.js';
import type { CommandRunner } from '../../src/kernel/exec.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../src/model/snapshot.js';
import { ObjectStore } from '../../src/model/store.js';
import type { Snapshot } from '../../src/model/types.js';
import { iptablesOptions, resolveNodeName, topologyOptions } from '../../src/sync/wiring.js';
import { createScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { silentLogger } from './cluster-sim.js';
import { kubeState, TapRunner } from './kernel-state.js';

const SERVICES = 1500;

function largeCluster() {
  const cluster = syntheticCluster({ services: SERVICES, endpointsPerService: 3, nodes: 100, seed: 7 });
  const config = syntheticConfig(cluster);
  const host = syntheticHost(cluster);
  const store = new ObjectStore(resolveNodeName(config, host));
  for (const event of clusterEvents(cluster)) store.apply(event);
  const node = nodeInfoFrom(store.name, store.node, { nodeIPs: host.nodeIPs });
  const builder = new SnapshotBuilder('IPv4', topologyOptions(config));
  return {
    cluster,
    options: iptablesOptions(config, host),
    snapshot: () => builder.build(store, node),
    /** replaces the first endpoint IP of service `index`; returns the changed service keys */
    churn(index: number, ip: string): Set<string> {
      const slice = cluster.slices[index]!;
      const updated = {
        ...slice,
        metadata: { ...slice.metadata, resourceVersion: String(++cluster.lastResourceVersion) },
        endpoints: slice.endpoints.map((e, i) => (i === 0 ? { ...e, addresses: [ip] } : e)),
      };
      cluster.slices[index] = updated;
      return new Set(store.apply({ type: 'update', kind: 'EndpointSlice', object: updated }).changedServices);
    },
  };
}

function backendIn(
  runner: CommandRunner,
  backend: Backend,
  options: ReturnType<typeof largeCluster>['options'],
  chunking: Partial<ChunkingOptions>,
) {
  return new IptablesBackend({ runner, backend, family: 'IPv4', options, log: silentLogger(), chunking });
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await fn();
  return [value, Math.round(performance.now() - start)];
}

describeKernel(`cold start of ${SERVICES} services`, () => {
  for (const backend of ['nft', 'legacy'] as const) {
    it(`${backend}: bounded transactions end where one transaction does; one-service partial sync after`, async () => {
      const world = largeCluster();
      const chunkedNs = await createScratchNetns();
      const singleNs = await createScratchNetns();
      try {
        const tap = new TapRunner(chunkedNs.runner);
        const chunked = backendIn(tap, backend, world.options, { threshold: 1000, batchServicePorts: 150 });
        const single = backendIn(singleNs.runner, backend, world.options, {
          threshold: Number.POSITIVE_INFINITY,
        });
        const snapshot: Snapshot = world.snapshot();
        expect(snapshot.servicePorts.length).toBeGreaterThan(1000);

        const full = { seq: 1, full: true, changedServices: new Set<string>() };
        const [, chunkedMs] = await timed(() => chunked.sync(snapshot, full));
        const [, singleMs] = await timed(() => single.sync(snapshot, full));
        const restores = tap.restoreInputs();
        expect(restores.length).toBeGreaterThanOrEqual(Math.floor(snapshot.servicePorts.length / 150));
        expect(restores.slice(0, -1).every((input) => !input.includes(':KUBE-SERVICES '))).toBe(true);
        const chunkedState = await kubeState(chunkedNs.runner, backend, 'IPv4');
        expect(chunkedState.split('\n').length).toBeGreaterThan(10_000);
        expect(chunkedState).toBe(await kubeState(singleNs.runner, backend, 'IPv4'));

        // One pod of one service replaced: the smallest partial sync.
        const changedServices = world.churn(11, '10.250.0.11');
        const next = world.snapshot();
        tap.clear();
        const [result, partialMs] = await timed(() =>
          chunked.sync(next, { seq: 2, full: false, changedServices }),
        );
        expect(result.full).toBe(false);
        expect(tap.restoreInputs()).toHaveLength(1);
        await single.sync(next, { seq: 2, full: true, changedServices: new Set() });
        expect(await kubeState(chunkedNs.runner, backend, 'IPv4')).toBe(
          await kubeState(singleNs.runner, backend, 'IPv4'),
        );

        console.info(
          `[${backend}] ${snapshot.servicePorts.length} service ports: cold start in ${restores.length} transactions ${chunkedMs} ms, ` +
            `one transaction ${singleMs} ms; one-service partial sync ${partialMs} ms (${result.restoreLines} restore lines)`,
        );
      } finally {
        await chunkedNs.teardown();
        await singleNs.teardown();
      }
    }, 300_000);
  }
});
