/**
 * One render from a set of objects: what `switchboard render` prints and what the
 * golden tests check. The sync loop uses the same pieces with long-lived caches.
 */

import { buildRenderContext } from '../backends/iptables/context.js';
import {
  FULL_SYNC,
  type IptablesRender,
  renderIptables,
  type SyncScope,
} from '../backends/iptables/render.js';
import type { HostFacts } from '../config/host.js';
import type { KubeProxyConfiguration } from '../config/kubeproxy.js';
import type { ObjectProblem } from '../errors.js';
import type { IPFamily } from '../model/ip.js';
import { nodeInfoFrom, SnapshotBuilder } from '../model/snapshot.js';
import { type ObjectEvent, ObjectStore } from '../model/store.js';
import { iptablesOptions, resolveNodeName, topologyOptions } from './wiring.js';

export interface RenderOnceInput {
  events: readonly ObjectEvent[];
  config: KubeProxyConfiguration;
  host: HostFacts;
  family: IPFamily;
  scope?: SyncScope;
}

export interface RenderOnceResult {
  render: IptablesRender;
  problems: ObjectProblem[];
  nodeName: string;
  nodeFound: boolean;
}

export function renderOnce(input: RenderOnceInput): RenderOnceResult {
  const store = storeFrom(input.events, resolveNodeName(input.config, input.host));
  return renderStore({ ...input, store });
}

/** The store of a set of objects. Kept apart so a caller can let go of the raw objects before rendering. */
export function storeFrom(events: readonly ObjectEvent[], nodeName: string): ObjectStore {
  const store = new ObjectStore(nodeName);
  for (const event of events) store.apply(event);
  return store;
}

/** renderOnce from a store already built with the node name of `config` and `host`. */
export function renderStore(
  input: Omit<RenderOnceInput, 'events'> & { store: ObjectStore },
): RenderOnceResult {
  const { store } = input;
  const node = nodeInfoFrom(store.name, store.node, { nodeIPs: input.host.nodeIPs });
  const snapshot = new SnapshotBuilder(input.family, topologyOptions(input.config)).build(store, node);
  const ctx = buildRenderContext(iptablesOptions(input.config, input.host), input.family, node);
  const render = renderIptables(snapshot, ctx, input.scope ?? FULL_SYNC);
  return { render, problems: store.currentProblems(), nodeName: store.name, nodeFound: store.node !== null };
}
