/**
 * An IpvsBackend on the in-memory kernel, with a fake clock and a desired state the test
 * sets between syncs.
 */
import { IpvsBackend } from '../../src/backends/ipvs/backend.js';
import type { IpvsState } from '../../src/backends/ipvs/state.js';
import { FakeNode } from '../../src/kernel/fakes/node.js';
import type { Logger } from '../../src/log.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { Snapshot } from '../../src/model/types.js';
import type { SyncRequest } from '../../src/sync/backend.js';
import { FakeClock } from '../sync/helpers.js';
import { silentLogger } from './builders.js';

export function snapshotOf(family: IPFamily = 'IPv4'): Snapshot {
  return {
    family,
    node: { name: 'node-1', labels: {}, ips: [], podCIDRs: [] },
    servicePorts: [],
    totalEndpoints: 0,
  };
}

let seq = 0;
export function request(full = false, changed: string[] = ['ns1/svc']): SyncRequest {
  return { seq: ++seq, full, changedServices: new Set(changed) };
}

export interface Harness {
  node: FakeNode;
  backend: IpvsBackend;
  clock: FakeClock;
  /** the desired state the next sync renders */
  desired: IpvsState;
  sync(full?: boolean, changed?: string[]): ReturnType<IpvsBackend['sync']>;
}

export function harness(
  desired: IpvsState,
  options: {
    node?: FakeNode;
    family?: IPFamily;
    excludeCIDRs?: string[];
    log?: Logger;
    clock?: FakeClock;
    gracefulCheckPeriodMs?: number;
  } = {},
): Harness {
  const node = options.node ?? new FakeNode();
  const clock = options.clock ?? new FakeClock();
  const family = options.family ?? 'IPv4';
  const h: Harness = {
    node,
    clock,
    desired,
    backend: new IpvsBackend({
      runner: node,
      iptablesBackend: 'nft',
      family,
      desired: () => h.desired,
      excludeCIDRs: options.excludeCIDRs ?? [],
      log: options.log ?? silentLogger(),
      clock,
      gracefulCheckPeriodMs: options.gracefulCheckPeriodMs ?? 1000,
    }),
    sync: (full = false, changed = ['ns1/svc']) => h.backend.sync(snapshotOf(family), request(full, changed)),
  };
  return h;
}
