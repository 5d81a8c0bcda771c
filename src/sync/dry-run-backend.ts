/**
 * Backends that print instead of applying: each sync writes a `# sync N full|partial
 * <family>` header and what a real backend would apply. In iptables mode that is the
 * iptables-restore input for `iptables-restore --noflush`, rendered with the same cached
 * IptablesRenderer, remembering the chains it "wrote" so that partial syncs and stale-chain
 * deletion (`-X`) look exactly as they would against a kernel. In IPVS mode it is the four
 * sections of the desired state (ipset, ipvs, kube-ipvs0, iptables), from a cached
 * IpvsRenderer.
 */
import {
  buildRenderContext,
  type IptablesOptions,
  type RenderContext,
} from '../backends/iptables/context.js';
import { IptablesRenderer } from '../backends/iptables/render.js';
import {
  buildIpvsRenderContext,
  type IpvsOptions,
  type IpvsRenderContext,
} from '../backends/ipvs/context.js';
import { formatIpvsState } from '../backends/ipvs/format.js';
import { IpvsRenderer } from '../backends/ipvs/render.js';
import type { IPFamily } from '../model/ip.js';
import type { NodeInfo, Snapshot } from '../model/types.js';
import type { BackendSyncResult, ProxyBackend, SyncRequest } from './backend.js';

/** Where the text goes: process.stdout, or any stream-like sink. */
export interface TextSink {
  write(chunk: string, callback: (error?: Error | null) => void): boolean;
}

function writeText(sink: TextSink, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    sink.write(text, (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * What the two modes share: the render context follows the node (its IPs, pod CIDRs) and
 * is kept while they stay the same. A new context invalidates the renderer's per-service
 * cache and changes rules of unchanged services, so it also upgrades the sync to a full one.
 */
abstract class PrintingBackend<Ctx> implements ProxyBackend {
  private ctx: Ctx | null = null;
  private ctxNodeKey = '';

  constructor(
    readonly family: IPFamily,
    readonly description: string,
    private readonly out: TextSink,
  ) {}

  protected abstract buildContext(node: NodeInfo): Ctx;

  /** Renders one sync: the text to print and the result to report. */
  protected abstract renderSync(
    snapshot: Snapshot,
    ctx: Ctx,
    request: SyncRequest,
    full: boolean,
  ): { text: string; result: BackendSyncResult };

  private contextFor(node: NodeInfo): { ctx: Ctx; changed: boolean } {
    const key = JSON.stringify([node.ips, node.podCIDRs]);
    if (this.ctx && key === this.ctxNodeKey) return { ctx: this.ctx, changed: false };
    const changed = this.ctx !== null;
    this.ctx = this.buildContext(node);
    this.ctxNodeKey = key;
    return { ctx: this.ctx, changed };
  }

  async sync(snapshot: Snapshot, request: SyncRequest): Promise<BackendSyncResult> {
    const { ctx, changed } = this.contextFor(snapshot.node);
    const full = request.full || changed;
    const { text, result } = this.renderSync(snapshot, ctx, request, full);
    await writeText(this.out, `# sync ${request.seq} ${full ? 'full' : 'partial'} ${this.family}\n${text}`);
    return result;
  }

  async lostState(): Promise<boolean> {
    return false;
  }
}

/** iptables mode: the restore input, partial syncs and stale-chain deletion included. */
export class DryRunBackend extends PrintingBackend<RenderContext> {
  private readonly renderer = new IptablesRenderer();
  /** service chains (KUBE-SVC-, KUBE-SEP-, ...) that would exist in the nat table now */
  private chains = new Set<string>();

  constructor(
    family: IPFamily,
    private readonly options: IptablesOptions,
    out: TextSink,
  ) {
    super(
      family,
      `dry-run ${family} (${family === 'IPv4' ? 'iptables' : 'ip6tables'}-restore input on stdout)`,
      out,
    );
  }

  protected buildContext(node: NodeInfo): RenderContext {
    return buildRenderContext(this.options, this.family, node);
  }

  protected renderSync(snapshot: Snapshot, ctx: RenderContext, request: SyncRequest, full: boolean) {
    const render = this.renderer.render(snapshot, ctx, {
      full,
      changedServices: request.changedServices,
      existingChains: this.chains,
    });
    this.chains = new Set(render.activeChains);
    const s = render.stats;
    return {
      text: render.text,
      result: {
        full,
        restoreLines: s.restoreLines,
        rulesPerTable: { filter: s.filterRules, nat: s.natRules },
        noLocalEndpoints: { internal: s.noLocalEndpointsInternal, external: s.noLocalEndpointsExternal },
      },
    };
  }
}

/** IPVS mode: the whole desired state, as its four sections, on every sync. */
export class IpvsDryRunBackend extends PrintingBackend<IpvsRenderContext> {
  private readonly renderer = new IpvsRenderer();

  constructor(
    family: IPFamily,
    private readonly options: IpvsOptions,
    out: TextSink,
  ) {
    super(family, `dry-run ${family} IPVS (ipset, ipvs, kube-ipvs0 and iptables sections on stdout)`, out);
  }

  protected buildContext(node: NodeInfo): IpvsRenderContext {
    return buildIpvsRenderContext(this.options, this.family, node);
  }

  protected renderSync(snapshot: Snapshot, ctx: IpvsRenderContext, _request: SyncRequest, full: boolean) {
    const render = this.renderer.render(snapshot, ctx);
    const text = formatIpvsState(render);
    const s = render.stats;
    return {
      text,
      result: {
        full,
        restoreLines: s.filterRules + s.natRules,
        rulesPerTable: { filter: s.filterRules, nat: s.natRules },
        noLocalEndpoints: { internal: s.noLocalEndpointsInternal, external: s.noLocalEndpointsExternal },
      },
    };
  }
}
