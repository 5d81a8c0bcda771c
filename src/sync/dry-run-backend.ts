/**
 * A backend that prints instead of applying: each sync writes a `# sync N full|partial
 * <family>` header and the iptables-restore input a real backend would feed to
 * `iptables-restore --noflush`. It renders with the same cached IptablesRenderer and
 * remembers the chains it "wrote", so partial syncs and stale-chain deletion (`-X`) look
 * exactly as they would against a kernel.
 */
import {
  buildRenderContext,
  type IptablesOptions,
  type RenderContext,
} from '../backends/iptables/context.js';
import { IptablesRenderer } from '../backends/iptables/render.js';
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

export class DryRunBackend implements ProxyBackend {
  readonly description: string;
  private readonly renderer = new IptablesRenderer();
  /** service chains (KUBE-SVC-, KUBE-SEP-, ...) that would exist in the nat table now */
  private chains = new Set<string>();
  private ctx: RenderContext | null = null;
  private ctxNodeKey = '';

  constructor(
    readonly family: IPFamily,
    private readonly options: IptablesOptions,
    private readonly out: TextSink,
  ) {
    this.description = `dry-run ${family} (${family === 'IPv4' ? 'iptables' : 'ip6tables'}-restore input on stdout)`;
  }

  /**
   * The render context depends on the node (its IPs, pod CIDRs). It is kept while they
   * stay the same: a new context invalidates the renderer's per-service cache and changes
   * rules of unchanged services, so it also upgrades the sync to a full one.
   */
  private contextFor(node: NodeInfo): { ctx: RenderContext; changed: boolean } {
    const key = JSON.stringify([node.ips, node.podCIDRs]);
    if (this.ctx && key === this.ctxNodeKey) return { ctx: this.ctx, changed: false };
    const changed = this.ctx !== null;
    this.ctx = buildRenderContext(this.options, this.family, node);
    this.ctxNodeKey = key;
    return { ctx: this.ctx, changed };
  }

  async sync(snapshot: Snapshot, request: SyncRequest): Promise<BackendSyncResult> {
    const { ctx, changed } = this.contextFor(snapshot.node);
    const full = request.full || changed;
    const render = this.renderer.render(snapshot, ctx, {
      full,
      changedServices: request.changedServices,
      existingChains: this.chains,
    });
    await writeText(
      this.out,
      `# sync ${request.seq} ${full ? 'full' : 'partial'} ${this.family}\n${render.text}`,
    );
    this.chains = new Set(render.activeChains);
    const s = render.stats;
    return {
      full,
      restoreLines: s.restoreLines,
      rulesPerTable: { filter: s.filterRules, nat: s.natRules },
      noLocalEndpoints: { internal: s.noLocalEndpointsInternal, external: s.noLocalEndpointsExternal },
    };
  }

  async lostState(): Promise<boolean> {
    return false;
  }
}
