/**
 * One render from a set of objects: what `switchboard render` prints and what the
 * golden tests check, in either mode. The sync loop uses the same pieces with long-lived
 * caches.
 */

import { buildRenderContext } from '../backends/iptables/context.js';
import {
  FULL_SYNC,
  type IptablesRender,
  renderIptables,
  type SyncScope,
} from '../backends/iptables/render.js';
import { buildIpvsRenderContext } from '../backends/ipvs/context.js';
import { type IpvsRender, renderIpvs } from '../backends/ipvs/render.js';
import type { HostFacts } from '../config/host.js';
import type { KubeProxyConfiguration } from '../config/kubeproxy.js';
import type { ObjectProblem } from '../errors.js';
import type { IPFamily } from '../model/ip.js';
import { nodeInfoFrom, SnapshotBuilder } from '../model/snapshot.js';
import { type ObjectEvent, ObjectStore } from '../model/store.js';
import type { NodeInfo, Snapshot } from '../model/types.js';
import { iptablesOptions, ipvsOptions, resolveNodeName, topologyOptions } from './wiring.js';

export interface RenderOnceInput {
  events: readonly ObjectEvent[];
  config: KubeProxyConfiguration;
  host: HostFacts;
  family: IPFamily;
  /** iptables mode only: IPVS renders are always the whole desired state */
  scope?: SyncScope;
}

export interface RenderOnceResult<R = IptablesRender> {
  render: R;
  problems: ObjectProblem[];
  nodeName: string;
  nodeFound: boolean;
}

/** A store built from the objects (storeFrom) with the node name of `config` and `host`. */
export type RenderStoreInput = Omit<RenderOnceInput, 'events'> & { store: ObjectStore };

/** The store of a set of objects. Kept apart so a caller can let go of the raw objects before rendering. */
export function storeFrom(events: readonly ObjectEvent[], nodeName: string): ObjectStore {
  const store = new ObjectStore(nodeName);
  for (const event of events) store.apply(event);
  return store;
}

interface Prepared {
  snapshot: Snapshot;
  node: NodeInfo;
  problems: ObjectProblem[];
  nodeName: string;
  nodeFound: boolean;
}

/** The family's snapshot of the store: the same for both modes. */
function prepare(input: RenderStoreInput): Prepared {
  const { store } = input;
  const node = nodeInfoFrom(store.name, store.node, { nodeIPs: input.host.nodeIPs });
  const snapshot = new SnapshotBuilder(input.family, topologyOptions(input.config)).build(store, node);
  return {
    snapshot,
    node,
    problems: store.currentProblems(),
    nodeName: store.name,
    nodeFound: store.node !== null,
  };
}

/** iptables mode: the restore input of one sync (full unless `scope` says otherwise). */
export function renderStore(input: RenderStoreInput): RenderOnceResult {
  const { snapshot, node, ...rest } = prepare(input);
  const ctx = buildRenderContext(iptablesOptions(input.config, input.host), input.family, node);
  return { render: renderIptables(snapshot, ctx, input.scope ?? FULL_SYNC), ...rest };
}

/** IPVS mode: the desired state after one sync on a clean node. */
export function renderIpvsStore(input: RenderStoreInput): RenderOnceResult<IpvsRender> {
  const { snapshot, node, ...rest } = prepare(input);
  const ctx = buildIpvsRenderContext(ipvsOptions(input.config, input.host), input.family, node);
  return { render: renderIpvs(snapshot, ctx), ...rest };
}

export function renderOnce(input: RenderOnceInput): RenderOnceResult {
  return renderStore({ ...input, store: storeFrom(input.events, resolveNodeName(input.config, input.host)) });
}

export function renderIpvsOnce(input: RenderOnceInput): RenderOnceResult<IpvsRender> {
  return renderIpvsStore({
    ...input,
    store: storeFrom(input.events, resolveNodeName(input.config, input.host)),
  });
}
