/**
 * Snapshot -> iptables-restore input (spec §4, §13, §15, §17). No I/O.
 *
 * A full render writes every service port's chains; a partial render (scope.full false)
 * writes the fixed chains in full but only the chains of services in
 * scope.changedServices, relying on `--noflush` to leave the others untouched. Chains
 * that exist in the kernel but belong to no service any more are flushed and deleted.
 */
import type { ServicePortState, Snapshot } from '../../model/types.js';
import { isServiceChain } from './chain-names.js';
import { LARGE_CLUSTER_ENDPOINTS, type RenderContext } from './context.js';
import {
  emptyTable,
  formatRestore,
  type RestoreTable,
  restoreLineCount,
  type TableName,
} from './restore-text.js';
import {
  type OwnChain,
  renderServicePort,
  type ServicePortRules,
  type SharedChainRules,
} from './service-rules.js';

/** The chains every render declares and fills in full, whatever the scope. */
export const FIXED_CHAINS: Readonly<Record<TableName, readonly string[]>> = {
  filter: [
    'KUBE-SERVICES',
    'KUBE-EXTERNAL-SERVICES',
    'KUBE-FORWARD',
    'KUBE-NODEPORTS',
    'KUBE-PROXY-FIREWALL',
    'KUBE-FIREWALL',
  ],
  nat: ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'],
};

export interface SyncScope {
  full: boolean;
  /** services (namespace/name) whose chains a partial render writes */
  changedServices: ReadonlySet<string>;
  /** service chains present in the nat table before this sync; null skips stale-chain deletion */
  existingChains: ReadonlySet<string> | null;
}

export const FULL_SYNC: SyncScope = { full: true, changedServices: new Set(), existingChains: null };

export interface RenderStats {
  servicePorts: number;
  endpoints: number;
  /** rules Switchboard owns after this sync, whether written this time or left in place */
  filterRules: number;
  natRules: number;
  natChains: number;
  /** lines of the restore input */
  restoreLines: number;
  noLocalEndpointsInternal: number;
  noLocalEndpointsExternal: number;
}

export interface IptablesRender {
  filter: RestoreTable;
  nat: RestoreTable;
  /**
   * Every service chain that exists after this sync (written now or kept). A partial
   * render that is given this set back as `existingChains` updates it in place.
   */
  activeChains: Set<string>;
  staleChains: string[];
  largeCluster: boolean;
  /** the text of the service chains' rule lists in `nat`: pass it to formatRestore with these tables */
  ruleTexts: ReadonlyMap<readonly string[], string>;
  stats: RenderStats;
  /**
   * The restore input of `filter` and `nat` as rendered, made on first read (a full sync's
   * applier writes what differs from the kernel, never this text; at 10,000 services it is
   * 37 MB). Read it before editing the tables.
   */
  readonly text: string;
}

const NODEPORTS_COMMENT =
  '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"';

/**
 * What the renderer keeps of a service port between renders. A partial sync reads, of the
 * ports that did not change, only their rules in the shared chains (KUBE-SERVICES, ...), the
 * names of their own chains and counts; their own chains' rules are read again only by a
 * full sync, which renders them anew (the renderer is pure, so they come out the same).
 * Keeping them was a quarter of the proxy's heap at 10,000 services (60 MiB of rule text
 * and lines); a full sync renders every port anyway when it starts cold.
 */
interface KeptPortRules {
  shared: SharedChainRules;
  ownChains: readonly string[];
  ownRuleCount: number;
  noLocalEndpoints: { internal: boolean; external: boolean };
}

type KeptOf = (sp: ServicePortState) => KeptPortRules;
/** A port's own chains with their rules (rendered anew when the port's were not kept). */
type OwnOf = (sp: ServicePortState) => readonly OwnChain[];

function keep(rules: ServicePortRules): KeptPortRules {
  return {
    shared: rules.shared,
    ownChains: rules.own.map((c) => c.chain),
    ownRuleCount: rules.ownRuleCount,
    noLocalEndpoints: rules.noLocalEndpoints,
  };
}

/** The service chains after a render, and those to delete. */
interface ChainState {
  active: Set<string>;
  stale: string[];
}

/** What the previous render of an IptablesRenderer left behind. */
interface PreviousRender {
  ports: ReadonlySet<ServicePortState>;
  active: Set<string>;
}

/**
 * Renders snapshots, remembering what partial syncs need of each service port's rules by
 * identity (KeptPortRules): the snapshot builder hands out the same ServicePortState for an
 * unchanged service, so a partial sync only computes what changed. It also keeps the
 * previous render's service ports and active chains, so a partial sync that continues from
 * it finds the active and stale chains from the service ports that came and went, not by
 * walking every chain.
 */
export class IptablesRenderer {
  private cache = new WeakMap<ServicePortState, KeptPortRules>();
  private cacheCtx: RenderContext | null = null;
  private cacheLarge = false;
  private previous: PreviousRender | null = null;

  render(snapshot: Snapshot, ctx: RenderContext, scope: SyncScope = FULL_SYNC): IptablesRender {
    const largeCluster = snapshot.totalEndpoints > LARGE_CLUSTER_ENDPOINTS;
    if (ctx !== this.cacheCtx || largeCluster !== this.cacheLarge) {
      this.cache = new WeakMap();
      this.cacheCtx = ctx;
      this.cacheLarge = largeCluster;
      this.previous = null;
    }
    // Own chains rendered by this call, until the render is assembled.
    const rendered = new Map<ServicePortState, readonly OwnChain[]>();
    const renderPort = (sp: ServicePortState): KeptPortRules => {
      const rules = renderServicePort(sp, ctx, largeCluster);
      const kept = keep(rules);
      this.cache.set(sp, kept);
      rendered.set(sp, rules.own);
      return kept;
    };
    const keptOf: KeptOf = (sp) => this.cache.get(sp) ?? renderPort(sp);
    // A kept port's own chains are rendered anew; what is kept of it stays as it is.
    const ownOf: OwnOf = (sp) => rendered.get(sp) ?? renderServicePort(sp, ctx, largeCluster).own;
    const ports = new Set(snapshot.servicePorts);
    const previous = this.previous;
    // Only valid when the kernel holds what the previous render left: the caller says so
    // by handing back that render's activeChains.
    const continues = !scope.full && previous !== null && scope.existingChains === previous.active;
    const chains = continues
      ? updatedChains(previous, ports, keptOf)
      : allChains(snapshot, scope.existingChains, keptOf);
    this.previous = { ports, active: chains.active };
    return assemble(snapshot, ctx, scope, largeCluster, { keptOf, ownOf }, chains);
  }
}

/** One-shot render without a cache (dry-run `render`, tests). */
export function renderIptables(
  snapshot: Snapshot,
  ctx: RenderContext,
  scope: SyncScope = FULL_SYNC,
): IptablesRender {
  return new IptablesRenderer().render(snapshot, ctx, scope);
}

/**
 * Adds to a full render made without the kernel's chains (existingChains null) the stale
 * ones: service chains `existing` has that the render does not keep, flushed and deleted
 * as allChains would have made them. Read the render's text only after this.
 */
export function addStaleChains(render: IptablesRender, existing: ReadonlySet<string>): void {
  const stale = staleOf(render.activeChains, existing);
  if (stale.length === 0) return;
  for (const chain of stale) render.nat.chains.set(chain, []);
  render.nat.deleted = [...render.nat.deleted, ...stale];
  render.staleChains = [...render.staleChains, ...stale];
  render.stats.restoreLines += 2 * stale.length;
}

function staleOf(active: ReadonlySet<string>, existing: ReadonlySet<string>): string[] {
  const stale: string[] = [];
  for (const chain of existing) {
    if (!active.has(chain) && isServiceChain(chain)) stale.push(chain);
  }
  return stale.sort();
}

/** Active chains from every service port; stale = the existing service chains not among them. */
function allChains(
  snapshot: Snapshot,
  existingChains: ReadonlySet<string> | null,
  keptOf: KeptOf,
): ChainState {
  const active = new Set<string>();
  for (const sp of snapshot.servicePorts) for (const chain of keptOf(sp).ownChains) active.add(chain);
  return { active, stale: existingChains ? staleOf(active, existingChains) : [] };
}

/**
 * The previous render's active chains, updated in place for the service ports that left
 * and came (a changed service is both: its old state leaves, its new one comes). Stale =
 * chains of the ports that left that no current port has.
 */
function updatedChains(
  previous: PreviousRender,
  ports: ReadonlySet<ServicePortState>,
  keptOf: KeptOf,
): ChainState {
  const { active } = previous;
  const left: string[] = [];
  for (const sp of previous.ports) {
    if (ports.has(sp)) continue;
    for (const chain of keptOf(sp).ownChains) {
      active.delete(chain);
      left.push(chain);
    }
  }
  for (const sp of ports) {
    if (previous.ports.has(sp)) continue;
    for (const chain of keptOf(sp).ownChains) active.add(chain);
  }
  const stale = left.filter((chain) => !active.has(chain));
  return { active, stale: stale.sort() };
}

function assemble(
  snapshot: Snapshot,
  ctx: RenderContext,
  scope: SyncScope,
  largeCluster: boolean,
  rules: { keptOf: KeptOf; ownOf: OwnOf },
  chains: ChainState,
): IptablesRender {
  const M = ctx.mark;
  const filter = emptyTable('filter');
  const nat = emptyTable('nat');
  const fServices: string[] = [];
  const fExternal: string[] = [];
  const fForward: string[] = [];
  const fNodePorts: string[] = [];
  const fFirewall: string[] = [];
  filter.chains.set('KUBE-SERVICES', fServices);
  filter.chains.set('KUBE-EXTERNAL-SERVICES', fExternal);
  filter.chains.set('KUBE-FORWARD', fForward);
  filter.chains.set('KUBE-NODEPORTS', fNodePorts);
  filter.chains.set('KUBE-PROXY-FIREWALL', fFirewall);
  if (ctx.family === 'IPv4' && ctx.localhostNodePorts) {
    filter.chains.set('KUBE-FIREWALL', [
      '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
    ]);
  }

  const nServices: string[] = [];
  const nNodePorts: string[] = [];
  const postrouting = [
    `-A KUBE-POSTROUTING -m mark ! --mark ${M}/${M} -j RETURN`,
    `-A KUBE-POSTROUTING -j MARK --xor-mark ${M}`,
    `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE${ctx.randomFully ? ' --random-fully' : ''}`,
  ];
  nat.chains.set('KUBE-SERVICES', nServices);
  nat.chains.set('KUBE-NODEPORTS', nNodePorts);
  nat.chains.set('KUBE-POSTROUTING', postrouting);
  nat.chains.set('KUBE-MARK-MASQ', [`-A KUBE-MARK-MASQ -j MARK --or-mark ${M}`]);

  const ruleTexts = new Map<readonly string[], string>();
  let ownRules = 0;
  let noLocalInternal = 0;
  let noLocalExternal = 0;
  for (const sp of snapshot.servicePorts) {
    const kept = rules.keptOf(sp);
    const s = kept.shared;
    pushAll(fServices, s.filterServices);
    pushAll(fExternal, s.filterExternalServices);
    pushAll(fNodePorts, s.filterNodePorts);
    pushAll(fFirewall, s.filterProxyFirewall);
    pushAll(nServices, s.natServices);
    pushAll(nNodePorts, s.natNodePorts);
    if (kept.noLocalEndpoints.internal) noLocalInternal++;
    if (kept.noLocalEndpoints.external) noLocalExternal++;
    ownRules += kept.ownRuleCount;
    if (scope.full || scope.changedServices.has(sp.port.serviceKey)) {
      for (const { chain, lines, text } of rules.ownOf(sp)) {
        nat.chains.set(chain, lines);
        ruleTexts.set(lines, text);
      }
    }
  }

  const { active: activeChains, stale: staleChains } = chains;
  for (const chain of staleChains) nat.chains.set(chain, []);
  nat.deleted = staleChains;

  // The jump to KUBE-NODEPORTS must stay the last rule of nat KUBE-SERVICES (spec §13).
  if (ctx.nodePorts.matchAll) {
    const exclude =
      ctx.family === 'IPv6' ? ' ! -d ::1/128' : ctx.localhostNodePorts ? '' : ' ! -d 127.0.0.0/8';
    nServices.push(
      `-A KUBE-SERVICES ${NODEPORTS_COMMENT} -m addrtype --dst-type LOCAL${exclude} -j KUBE-NODEPORTS`,
    );
  } else {
    for (const ip of ctx.nodePorts.addresses) {
      nServices.push(`-A KUBE-SERVICES ${NODEPORTS_COMMENT} -d ${ip} -j KUBE-NODEPORTS`);
    }
  }

  // spec §15: the INVALID drop is left out when conntrack is liberal about TCP windows.
  if (!ctx.tcpBeLiberal) {
    const acct = ctx.nfacctInvalid ? ' -m nfacct --nfacct-name ct_state_invalid_dropped_pkts' : '';
    fForward.push(`-A KUBE-FORWARD -m conntrack --ctstate INVALID${acct} -j DROP`);
  }
  fForward.push(
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${M}/${M} -j ACCEPT`,
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
  );

  let text: string | null = null;
  let filterRules = 0;
  for (const r of filter.chains.values()) filterRules += r.length;
  const fixedNat = nServices.length + nNodePorts.length + postrouting.length + 1; /* KUBE-MARK-MASQ */
  return {
    filter,
    nat,
    activeChains,
    staleChains,
    largeCluster,
    ruleTexts,
    get text() {
      text ??= formatRestore([filter, nat], ruleTexts);
      return text;
    },
    stats: {
      servicePorts: snapshot.servicePorts.length,
      endpoints: snapshot.totalEndpoints,
      filterRules,
      natRules: fixedNat + ownRules,
      natChains: 4 + activeChains.size,
      restoreLines: restoreLineCount([filter, nat]),
      noLocalEndpointsInternal: noLocalInternal,
      noLocalEndpointsExternal: noLocalExternal,
    },
  };
}

function pushAll(target: string[], items: readonly string[]): void {
  for (const item of items) target.push(item);
}
