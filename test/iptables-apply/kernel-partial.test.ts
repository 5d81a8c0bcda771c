/**
 * Property: after any sequence of syncs (mostly partial) following endpoint churn and
 * service additions, changes and deletions, the kernel holds exactly what ONE full sync
 * of the final state writes into a fresh namespace. Real kernel, both backends.
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { IptablesBackend } from '../../src/backends/iptables/backend.js';
import type { Backend } from '../../src/kernel/backend.js';
import type { CommandRunner } from '../../src/kernel/exec.js';
import { withScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { ClusterSim, type ServiceSpec, silentLogger, testOptions } from './cluster-sim.js';
import { kubeState } from './kernel-state.js';

const SLOTS = 6;

/** A service in slot `slot` (fixed name and IPs), with a generated shape. */
const serviceArb = (slot: number): fc.Arbitrary<ServiceSpec> =>
  fc
    .record({
      type: fc.constantFrom('ClusterIP', 'NodePort', 'LoadBalancer') as fc.Arbitrary<ServiceSpec['type']>,
      endpoints: fc.uniqueArray(fc.record({ host: fc.integer({ min: 2, max: 9 }), local: fc.boolean() }), {
        maxLength: 4,
        selector: (e) => e.host,
      }),
      etpLocal: fc.boolean(),
      sourceRanges: fc.boolean(),
      affinity: fc.boolean(),
      twoPorts: fc.boolean(),
    })
    .map((g) => ({
      name: `svc${slot}`,
      namespace: slot % 2 === 0 ? 'ns1' : 'ns2',
      type: g.type,
      clusterIP: `172.30.0.${10 + slot}`,
      ports: [
        { name: 'http', port: 80, nodePort: 30100 + slot },
        ...(g.twoPorts
          ? [{ name: 'dns', port: 53, protocol: 'UDP' as const, nodePort: 30200 + slot, targetPort: 53 }]
          : []),
      ],
      loadBalancerIP: `5.6.7.${10 + slot}`,
      ...(g.type !== 'ClusterIP' && g.etpLocal ? { externalTrafficPolicy: 'Local' as const } : {}),
      ...(g.type === 'LoadBalancer' && g.sourceRanges
        ? { loadBalancerSourceRanges: ['203.0.113.0/24'] }
        : {}),
      ...(g.affinity ? { affinitySeconds: 300 } : {}),
      endpoints: g.endpoints.map((e) => ({
        ip: `10.244.${e.local ? 1 : 2}.${slot * 10 + e.host}`,
        local: e.local,
      })),
    }));

type Step = { kind: 'upsert'; spec: ServiceSpec } | { kind: 'delete'; slot: number } | { kind: 'full' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .integer({ min: 0, max: SLOTS - 1 })
      .chain((slot) => serviceArb(slot).map((spec) => ({ kind: 'upsert' as const, spec }))),
  },
  {
    weight: 2,
    arbitrary: fc.integer({ min: 0, max: SLOTS - 1 }).map((slot) => ({ kind: 'delete' as const, slot })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'full' as const }) },
);

/** A sequence: an initial cluster, then steps, each followed by a sync; a few steps per sync. */
const scenarioArb = fc.record({
  initial: fc.tuple(
    ...Array.from({ length: SLOTS }, (_, slot) => fc.option(serviceArb(slot), { nil: undefined })),
  ),
  steps: fc.array(fc.array(stepArb, { minLength: 1, maxLength: 3 }), { minLength: 2, maxLength: 6 }),
});

function newBackend(runner: CommandRunner, backend: Backend) {
  return new IptablesBackend({
    runner,
    backend,
    family: 'IPv4',
    options: testOptions(),
    log: silentLogger(),
  });
}

describeKernel('partial syncs converge to what one full sync writes', () => {
  for (const backend of ['nft', 'legacy'] as const) {
    it(`${backend}: random sequences of churn`, async () => {
      await fc.assert(
        fc.asyncProperty(scenarioArb, async ({ initial, steps }) => {
          const sim = new ClusterSim();
          for (const spec of initial) if (spec) sim.upsert(spec);
          const final = await withScratchNetns(async ({ runner }) => {
            const be = newBackend(runner, backend);
            await be.sync(sim.snapshot(), sim.request(true));
            sim.synced();
            let partials = 0;
            for (const batch of steps) {
              let full = false;
              for (const step of batch) {
                if (step.kind === 'upsert') sim.upsert(step.spec);
                else if (step.kind === 'delete') {
                  const key = `${step.slot % 2 === 0 ? 'ns1' : 'ns2'}/svc${step.slot}`;
                  if (sim.keys().includes(key)) sim.delete(key);
                } else full = true;
              }
              const result = await be.sync(sim.snapshot(), sim.request(full));
              expect(result.full).toBe(full);
              if (!full) partials++;
              sim.synced();
            }
            return { state: await kubeState(runner, backend, 'IPv4'), partials };
          });
          const expected = await withScratchNetns(async ({ runner }) => {
            await newBackend(runner, backend).sync(sim.snapshot(), {
              seq: 1,
              full: true,
              changedServices: new Set(),
            });
            return kubeState(runner, backend, 'IPv4');
          });
          expect(final.state).toBe(expected);
        }),
        { numRuns: 6, endOnFailure: true },
      );
    }, 180_000);
  }
});
