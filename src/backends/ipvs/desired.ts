/**
 * One family's desired IPVS state, as the applier asks for it on every sync: the cached
 * IpvsRenderer with a render context that follows the node. A new context makes the
 * renderer start over (it caches per service port by the context's identity), so the
 * context is rebuilt only when the node facts it is built from change: the Node object's
 * name, IPs and pod CIDRs, or the addresses the node's interfaces carry (read again by the
 * applier as the node runs, see IpvsBackend).
 */
import type { Logger } from '../../log.js';
import type { IPFamily } from '../../model/ip.js';
import type { Snapshot } from '../../model/types.js';
import { buildIpvsRenderContext, type IpvsOptions, type IpvsRenderContext } from './context.js';
import { IpvsRenderer } from './render.js';
import type { IpvsState } from './state.js';

/** interface name -> `addr/prefix` list, as HostFacts and `ip -j addr show` give them */
export type InterfaceAddressMap = IpvsOptions['interfaces'];

/**
 * The family's desired state for a snapshot. `interfaces`: the node's addresses as last
 * read; absent, those of the options (host facts) are used.
 */
export type DesiredIpvsState = (snapshot: Snapshot, interfaces?: InterfaceAddressMap) => IpvsState;

/** Whether two contexts put NodePorts on, and leave unbound, the same addresses. */
function sameAddresses(a: IpvsRenderContext, b: IpvsRenderContext): boolean {
  const nodeA = [...a.nodeAddresses];
  const nodeB = [...b.nodeAddresses];
  return (
    a.nodePortAddresses.length === b.nodePortAddresses.length &&
    a.nodePortAddresses.every((ip, i) => ip === b.nodePortAddresses[i]) &&
    nodeA.length === nodeB.length &&
    nodeA.every((ip, i) => ip === nodeB[i])
  );
}

export function desiredIpvsState(options: IpvsOptions, family: IPFamily, log?: Logger): DesiredIpvsState {
  const renderer = new IpvsRenderer();
  let ctx: IpvsRenderContext | null = null;
  let ctxKey = '';
  let ctxInterfaces = options.interfaces;
  return (snapshot, interfaces = options.interfaces) => {
    const { node } = snapshot;
    const key = JSON.stringify([node.name, node.ips, node.podCIDRs]);
    if (ctx === null || key !== ctxKey) {
      ctx = buildIpvsRenderContext({ ...options, interfaces }, family, node);
    } else if (interfaces !== ctxInterfaces) {
      // Most changes of the interfaces touch no address that matters here (a pod's veth
      // comes or goes, kube-ipvs0 gains a service address): such a context is not taken,
      // so the renderer keeps its cache.
      const next = buildIpvsRenderContext({ ...options, interfaces }, family, node);
      if (!sameAddresses(ctx, next)) {
        log?.info(
          {
            family,
            nodePortAddresses: next.nodePortAddresses,
            before: ctx.nodePortAddresses,
            nodeAddresses: [...next.nodeAddresses],
          },
          "the node's addresses changed: NodePort virtual servers follow",
        );
        ctx = next;
      }
    }
    ctxKey = key;
    ctxInterfaces = interfaces;
    return renderer.render(snapshot, ctx);
  };
}
