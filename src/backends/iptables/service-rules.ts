/**
 * The rules of one service port (spec §5-§7), as kube-proxy's iptables proxier writes
 * them. Pure: the same ServicePortState and context always give the same lines, which
 * is what lets the renderer cache them by identity between syncs.
 */
import { cidrContains, parseCIDR, parseIP } from '../../model/ip.js';
import type { Endpoint, ServicePortState } from '../../model/types.js';
import { endpointChain, serviceChains } from './chain-names.js';
import type { RenderContext } from './context.js';
import { probability } from './probability.js';
import { type FlatRules, flattenRules } from './restore-text.js';

/** Rules this service port contributes to the chains every sync rewrites. */
export interface SharedChainRules {
  filterServices: readonly string[];
  filterExternalServices: readonly string[];
  filterNodePorts: readonly string[];
  filterProxyFirewall: readonly string[];
  natServices: readonly string[];
  natNodePorts: readonly string[];
}

export interface OwnChain extends FlatRules {
  chain: string;
}

export interface ServicePortRules {
  shared: SharedChainRules;
  /** the service port's own nat chains (EXT, FW, SVC, SVL, SEP...) with their rules, in declaration order */
  own: OwnChain[];
  /** rules in `own`, over all its chains */
  ownRuleCount: number;
  /** counts for metrics */
  noLocalEndpoints: { internal: boolean; external: boolean };
}

export function renderServicePort(
  state: ServicePortState,
  ctx: RenderContext,
  largeCluster: boolean,
): ServicePortRules {
  const { port: sp, selection: sel } = state;
  const N = sp.nameString;
  const p = sp.protocol.toLowerCase();
  const X = `-m ${p} -p ${p}`;
  const chains = serviceChains(N, sp.protocol);
  const shared = {
    filterServices: [] as string[],
    filterExternalServices: [] as string[],
    filterNodePorts: [] as string[],
    filterProxyFirewall: [] as string[],
    natServices: [] as string[],
    natNodePorts: [] as string[],
  };
  const own: [string, string[]][] = [];

  const hasEndpoints = sel.hasEndpoints;
  const noLocal = sel.local.length === 0;
  const hasInternalEndpoints = hasEndpoints && !(sp.internalPolicyLocal && noLocal);
  const hasExternalEndpoints = hasEndpoints && !(sp.externalPolicyLocal && noLocal);
  const usesClusterChain = sel.cluster.length > 0 && sel.usesClusterEndpoints;
  const usesLocalChain = sel.local.length > 0 && sel.usesLocalEndpoints;
  const internalChain = sp.internalPolicyLocal ? chains.svl : chains.svc;
  const externalPolicyChain = sp.externalPolicyLocal ? chains.svl : chains.svc;
  const usesExtChain = hasEndpoints && state.externallyAccessible;
  const usesFwChain =
    hasEndpoints && sp.loadBalancerVIPs.length > 0 && sp.loadBalancerSourceRanges.length > 0;
  const lbChain = usesFwChain ? chains.fw : chains.ext;

  // Comments of the filter rules for traffic that has nowhere to go (spec §5, §11).
  const noEndpoints = `-m comment --comment "${N} has no endpoints"`;
  const noLocalEndpoints = `-m comment --comment "${N} has no local endpoints"`;
  const filterComment = hasEndpoints ? noLocalEndpoints : noEndpoints;
  const filterTarget = hasEndpoints ? 'DROP' : 'REJECT';

  // 1. ClusterIP
  const clusterIPMatch = `-m comment --comment "${N} cluster IP" ${X} -d ${sp.clusterIP} --dport ${sp.port}`;
  if (hasInternalEndpoints) {
    shared.natServices.push(`-A KUBE-SERVICES ${clusterIPMatch} -j ${internalChain}`);
  } else {
    shared.filterServices.push(
      `-A KUBE-SERVICES ${filterComment} ${X} -d ${sp.clusterIP} --dport ${sp.port} -j ${filterTarget}`,
    );
  }

  // 2. externalIPs
  for (const ip of sp.externalIPs) {
    if (hasEndpoints) {
      shared.natServices.push(
        `-A KUBE-SERVICES -m comment --comment "${N} external IP" ${X} -d ${ip} --dport ${sp.port} -j ${chains.ext}`,
      );
    }
    if (!hasExternalEndpoints) {
      shared.filterExternalServices.push(
        `-A KUBE-EXTERNAL-SERVICES ${filterComment} ${X} -d ${ip} --dport ${sp.port} -j ${filterTarget}`,
      );
    }
  }

  // 3. load-balancer VIPs, then 4. their filter rules
  for (const vip of sp.loadBalancerVIPs) {
    if (hasEndpoints) {
      shared.natServices.push(
        `-A KUBE-SERVICES -m comment --comment "${N} loadbalancer IP" ${X} -d ${vip} --dport ${sp.port} -j ${lbChain}`,
      );
    }
    if (usesFwChain) {
      shared.filterProxyFirewall.push(
        `-A KUBE-PROXY-FIREWALL -m comment --comment "${N} traffic not accepted by ${chains.fw}" ${X} -d ${vip} --dport ${sp.port} -j DROP`,
      );
    }
  }
  if (!hasExternalEndpoints) {
    for (const vip of sp.loadBalancerVIPs) {
      shared.filterExternalServices.push(
        `-A KUBE-EXTERNAL-SERVICES ${filterComment} ${X} -d ${vip} --dport ${sp.port} -j ${filterTarget}`,
      );
    }
  }

  // 5. NodePort
  if (sp.nodePort !== 0) {
    if (hasEndpoints) {
      if (ctx.localhostNodePorts && ctx.nfacctLocalhost) {
        shared.natNodePorts.push(
          `-A KUBE-NODEPORTS -m comment --comment ${N} ${X} -d 127.0.0.0/8 --dport ${sp.nodePort} -m nfacct --nfacct-name localhost_nps_accepted_pkts -j ${chains.ext}`,
        );
      }
      shared.natNodePorts.push(
        `-A KUBE-NODEPORTS -m comment --comment ${N} ${X} --dport ${sp.nodePort} -j ${chains.ext}`,
      );
    }
    if (!hasExternalEndpoints) {
      shared.filterExternalServices.push(
        `-A KUBE-EXTERNAL-SERVICES ${filterComment} -m addrtype --dst-type LOCAL ${X} --dport ${sp.nodePort} -j ${filterTarget}`,
      );
    }
  }

  // 6. health-check node port: always TCP, regardless of endpoints
  if (sp.healthCheckNodePort !== 0) {
    shared.filterNodePorts.push(
      `-A KUBE-NODEPORTS -m comment --comment "${N} health check node port" -m tcp -p tcp --dport ${sp.healthCheckNodePort} -j ACCEPT`,
    );
  }

  // 8. internal masquerade: the first rule of the internal chain
  const internalChainRules: string[] = [];
  if (hasInternalEndpoints) {
    if (ctx.masqueradeAll) internalChainRules.push(`-A ${internalChain} ${clusterIPMatch} -j KUBE-MARK-MASQ`);
    else if (ctx.localDetector) {
      internalChainRules.push(
        `-A ${internalChain} ${clusterIPMatch} ${ctx.localDetector.ifNotLocal} -j KUBE-MARK-MASQ`,
      );
    }
  }

  // 9. EXT chain
  if (usesExtChain) {
    const ext = chains.ext;
    const rules: string[] = [];
    if (!sp.externalPolicyLocal) {
      rules.push(
        `-A ${ext} -m comment --comment "masquerade traffic for ${N} external destinations" -j KUBE-MARK-MASQ`,
      );
    } else {
      if (ctx.localDetector) {
        rules.push(
          `-A ${ext} -m comment --comment "pod traffic for ${N} external destinations" ${ctx.localDetector.ifLocal} -j ${chains.svc}`,
        );
      }
      rules.push(
        `-A ${ext} -m comment --comment "masquerade LOCAL traffic for ${N} external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
        `-A ${ext} -m comment --comment "route LOCAL traffic for ${N} external destinations" -m addrtype --src-type LOCAL -j ${chains.svc}`,
      );
    }
    if (hasExternalEndpoints) rules.push(`-A ${ext} -j ${externalPolicyChain}`);
    own.push([ext, rules]);
  }

  // 10. FW chain
  if (usesFwChain) {
    const fw = chains.fw;
    const base = `-A ${fw} -m comment --comment "${N} loadbalancer IP"`;
    const rules = sp.loadBalancerSourceRanges.map((r) => `${base} -s ${r} -j ${chains.ext}`);
    if (rangesContain(sp.loadBalancerSourceRanges, ctx.nodeIP)) {
      for (const vip of sp.loadBalancerVIPs) rules.push(`${base} -s ${vip} -j ${chains.ext}`);
    }
    rules.push(
      `-A ${fw} -m comment --comment "other traffic to ${N} will be dropped by KUBE-PROXY-FIREWALL"`,
    );
    own.push([fw, rules]);
  }

  // 11./12. dispatch chains
  const endpointChains = new Map<string, string>();
  const chainOf = (ep: Endpoint) => {
    let c = endpointChains.get(ep.endpoint);
    if (c === undefined) {
      c = endpointChain(N, sp.protocol, ep.endpoint);
      endpointChains.set(ep.endpoint, c);
    }
    return c;
  };
  const dispatch = (chain: string, endpoints: readonly Endpoint[]) => {
    const rules = chain === internalChain ? internalChainRules : [];
    const comment = (ep: Endpoint) => (largeCluster ? '' : ` -m comment --comment "${N} -> ${ep.endpoint}"`);
    if (sp.stickySeconds > 0) {
      for (const ep of endpoints) {
        const sep = chainOf(ep);
        rules.push(
          `-A ${chain}${comment(ep)} -m recent --name ${sep} --rcheck --seconds ${sp.stickySeconds} --reap -j ${sep}`,
        );
      }
    }
    const n = endpoints.length;
    endpoints.forEach((ep, i) => {
      const stat = i < n - 1 ? ` -m statistic --mode random --probability ${probability(n - i)}` : '';
      rules.push(`-A ${chain}${comment(ep)}${stat} -j ${chainOf(ep)}`);
    });
    own.push([chain, rules]);
  };
  if (usesClusterChain) dispatch(chains.svc, sel.cluster);
  if (usesLocalChain) dispatch(chains.svl, sel.local);

  // 13. endpoint chains
  const sepComment = largeCluster ? '' : ` -m comment --comment ${N}`;
  const affinity = sp.stickySeconds > 0;
  for (const ep of sel.allReachable) {
    const sep = chainOf(ep);
    own.push([
      sep,
      [
        `-A ${sep}${sepComment} -s ${ep.ip} -j KUBE-MARK-MASQ`,
        `-A ${sep}${sepComment}${affinity ? ` -m recent --name ${sep} --set` : ''} ${X} -j DNAT --to-destination ${ep.endpoint}`,
      ],
    ]);
  }

  return {
    shared: {
      filterServices: flattenRules(shared.filterServices).lines,
      filterExternalServices: flattenRules(shared.filterExternalServices).lines,
      filterNodePorts: flattenRules(shared.filterNodePorts).lines,
      filterProxyFirewall: flattenRules(shared.filterProxyFirewall).lines,
      natServices: flattenRules(shared.natServices).lines,
      natNodePorts: flattenRules(shared.natNodePorts).lines,
    },
    own: own.map(([chain, rules]) => ({ chain, ...flattenRules(rules) })),
    ownRuleCount: own.reduce((n, [, rules]) => n + rules.length, 0),
    noLocalEndpoints: {
      internal: hasEndpoints && !hasInternalEndpoints,
      external: hasEndpoints && !hasExternalEndpoints,
    },
  };
}

function rangesContain(ranges: readonly string[], ip: string): boolean {
  const addr = parseIP(ip);
  return (
    addr !== null &&
    ranges.some((r) => {
      const cidr = parseCIDR(r);
      return cidr !== null && cidrContains(cidr, addr);
    })
  );
}
