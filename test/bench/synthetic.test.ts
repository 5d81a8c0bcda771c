import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { firstReadyEndpoint, replaceEndpointIP } from '../../bench/endpoint-change.js';
import { writeManifestDumps } from '../../bench/manifest-dump.js';
import { runScenario } from '../../bench/scenario.js';
import { clusterEvents, DEFAULT_SEED, podIP, syntheticCluster } from '../../bench/synthetic-cluster.js';
import { syntheticConfig, syntheticHost } from '../../bench/synthetic-config.js';
import { checkPartialRender } from '../../bench/verify-partial.js';
import { buildRenderContext } from '../../src/backends/iptables/context.js';
import { IptablesRenderer } from '../../src/backends/iptables/render.js';
import { formatProblem } from '../../src/errors.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../src/model/snapshot.js';
import { ObjectStore } from '../../src/model/store.js';
import { readManifests } from '../../src/sources/manifests.js';
import { renderOnce } from '../../src/sync/render-once.js';
import { iptablesOptions, topologyOptions } from '../../src/sync/wiring.js';

const shape = (services: number, seed = DEFAULT_SEED) => ({
  services,
  endpointsPerService: 10,
  nodes: 100,
  seed,
});

describe('synthetic cluster generator', () => {
  it('produces objects the proxy accepts and renders every service port', () => {
    const cluster = syntheticCluster(shape(20));
    const { render, problems, nodeFound } = renderOnce({
      events: clusterEvents(cluster),
      config: syntheticConfig(cluster),
      host: syntheticHost(cluster),
      family: 'IPv4',
    });
    expect(problems.map(formatProblem)).toEqual([]);
    expect(nodeFound).toBe(true);

    const portCount = cluster.services.reduce((n, s) => n + (s.spec?.ports?.length ?? 0), 0);
    expect(cluster.mix.servicePorts).toBe(portCount);
    expect(render.stats.servicePorts).toBe(portCount);
    // Each port of a service sees all ten endpoints of its slice.
    const endpointCount = cluster.services.reduce(
      (n, s, i) => n + (s.spec?.ports?.length ?? 0) * cluster.slices[i]!.endpoints.length,
      0,
    );
    expect(render.stats.endpoints).toBe(endpointCount);
    for (const svc of cluster.services) expect(render.text).toContain(`-d ${svc.spec?.clusterIP} `);
  });

  it('is deterministic for a seed and differs between seeds', () => {
    expect(syntheticCluster(shape(50))).toEqual(syntheticCluster(shape(50)));
    expect(syntheticCluster(shape(50, 7)).slices).not.toEqual(syntheticCluster(shape(50)).slices);
  });

  it('generates the intended mix', () => {
    const { mix, services } = syntheticCluster(shape(1000));
    expect(mix.clusterIP + mix.nodePort + mix.loadBalancer).toBe(1000);
    expect(mix.clusterIP).toBeGreaterThan(650);
    expect(mix.nodePort).toBeGreaterThan(100);
    expect(mix.loadBalancer).toBeGreaterThan(60);
    expect(mix.lbSourceRanges).toBeGreaterThan(10);
    expect(mix.lbLocalWithHealthCheck).toBeGreaterThan(10);
    expect(mix.clientIPAffinity).toBeGreaterThan(25);
    expect(mix.multiPort).toBeGreaterThan(60);
    expect(mix.notReadyEndpoints).toBeGreaterThan(0);
    expect(mix.terminatingEndpoints).toBeGreaterThan(0);
    expect(mix.localEndpoints).toBeGreaterThan(0);
    const nodePorts = services.flatMap((s) => [
      ...(s.spec?.ports ?? []).map((p) => p.nodePort).filter((p) => p !== undefined),
      ...(s.spec?.healthCheckNodePort ? [s.spec.healthCheckNodePort] : []),
    ]);
    expect(new Set(nodePorts).size).toBe(nodePorts.length);
    expect(new Set(services.map((s) => s.spec?.clusterIP)).size).toBe(1000);
  });
});

describe('partial render check', () => {
  function setup() {
    const cluster = syntheticCluster(shape(20));
    const config = syntheticConfig(cluster);
    const host = syntheticHost(cluster);
    const store = new ObjectStore(cluster.nodeName);
    for (const e of clusterEvents(cluster)) store.apply(e);
    const node = nodeInfoFrom(cluster.nodeName, store.node, { nodeIPs: host.nodeIPs });
    const ctx = buildRenderContext(iptablesOptions(config, host), 'IPv4', node);
    const builder = new SnapshotBuilder('IPv4', topologyOptions(config));
    const renderer = new IptablesRenderer();
    const before = renderer.render(builder.build(store, node), ctx);

    const i = cluster.services.findIndex((s) => (s.spec?.ports?.length ?? 0) > 1);
    const svc = cluster.services[i]!;
    const serviceKey = `${svc.metadata?.namespace}/${svc.metadata?.name}`;
    const change = replaceEndpointIP(
      cluster.slices[i]!,
      firstReadyEndpoint(cluster.slices[i]!),
      podIP(0, 60000),
      1e9,
    );
    store.apply({ type: 'update', kind: 'EndpointSlice', object: change.slice });
    const snapshot = builder.build(store, node);
    const expected = { serviceKey, removedIP: change.removedIP, addedIP: change.addedIP };
    return { renderer, snapshot, ctx, before, serviceKey, expected };
  }

  it('accepts a correct partial render of a two-port service (two stale SEP chains)', () => {
    const { renderer, snapshot, ctx, before, serviceKey, expected } = setup();
    const scope = {
      full: false,
      changedServices: new Set([serviceKey]),
      existingChains: before.activeChains,
    };
    const partial = renderer.render(snapshot, ctx, scope);
    expect(checkPartialRender(partial, snapshot, expected)).toEqual([]);
    expect(partial.staleChains).toHaveLength(2);
  });

  it('rejects a render that writes other services or deletes nothing', () => {
    const { renderer, snapshot, ctx, expected } = setup();
    const full = renderer.render(snapshot, ctx);
    const failures = checkPartialRender(full, snapshot, expected).join('\n');
    expect(failures).toMatch(/should not/);
    expect(failures).toMatch(/lack KUBE-SEP-/);
    expect(failures).toMatch(/-X lines are \[\]/);
  });

  it('a small scenario runs and verifies without failures', () => {
    const result = runScenario('20x10', { nodes: 100, seed: DEFAULT_SEED });
    expect(result.failures).toEqual([]);
    expect(result.restoreLinesPartial).toBeLessThan(result.restoreLinesFull);
  });
});

describe('the manifest loading benchmark', () => {
  it('dumps the cluster as kubectl JSON and YAML that render exactly as the objects themselves', async () => {
    const cluster = syntheticCluster(shape(30));
    const dir = await mkdtemp(join(tmpdir(), 'sb-bench-dump-'));
    try {
      const dumps = writeManifestDumps(cluster, dir);
      const input = {
        config: syntheticConfig(cluster),
        host: syntheticHost(cluster),
        family: 'IPv4' as const,
      };
      const expected = renderOnce({ events: clusterEvents(cluster), ...input }).render.text;
      for (const file of [dumps.json, dumps.yaml]) {
        const { events, notices } = await readManifests([file]);
        expect(notices).toEqual([]);
        expect(renderOnce({ events, ...input }).render.text).toBe(expected);
      }
      expect(await readFile(dumps.yaml, 'utf8')).toMatch(/^items:\n- apiVersion: v1\n {2}kind: Service\n/m);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
