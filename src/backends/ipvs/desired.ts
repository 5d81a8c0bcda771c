/**
 * One family's desired IPVS state, as the applier asks for it on every sync: the cached
 * IpvsRenderer with a render context that follows the node. A new context makes the
 * renderer start over (it caches per service port by the context's identity), so the
 * context is rebuilt only when the node facts it is built from change.
 */
import type { IPFamily } from '../../model/ip.js';
import type { Snapshot } from '../../model/types.js';
import { buildIpvsRenderContext, type IpvsOptions, type IpvsRenderContext } from './context.js';
import { IpvsRenderer } from './render.js';
import type { IpvsState } from './state.js';

export function desiredIpvsState(options: IpvsOptions, family: IPFamily): (snapshot: Snapshot) => IpvsState {
  const renderer = new IpvsRenderer();
  let ctx: IpvsRenderContext | null = null;
  let ctxKey = '';
  return (snapshot) => {
    const { node } = snapshot;
    const key = JSON.stringify([node.name, node.ips, node.podCIDRs]);
    if (ctx === null || key !== ctxKey) {
      ctx = buildIpvsRenderContext(options, family, node);
      ctxKey = key;
    }
    return renderer.render(snapshot, ctx);
  };
}
