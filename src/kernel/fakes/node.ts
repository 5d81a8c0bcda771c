/**
 * A node's kernel tools in memory, behind the CommandRunner interface the real code uses:
 * `ipvsadm`, `ipset`, `ip` (links and addresses), `sysctl`, `test -e /proc/net/ip_vs`, and
 * optionally iptables. Production code runs unchanged on top of it; every call is recorded
 * so tests can count the kernel operations a sync issued.
 *
 * Any tool can be left to a `fallback` runner instead, e.g. real ipset and iptables inside
 * a scratch network namespace while ipvsadm and kube-ipvs0 (no ip_vs and no dummy links on
 * this project's hosts) stay in memory.
 */
import {
  CommandError,
  type CommandRunner,
  honourReject,
  inputText,
  type RecordedCall,
  type RunOptions,
  type RunResult,
} from '../exec.js';
import { FakeIp } from './ip.js';
import { FakeIpset } from './ipset.js';
import { FakeIptables } from './iptables.js';
import { FakeIpvsadm } from './ipvsadm.js';
import { FakeSysctl, ipvsNodeSysctls } from './sysctl.js';

export type FakeTool = 'ipvsadm' | 'ipset' | 'ip' | 'sysctl' | 'iptables';

export interface FakeNodeOptions {
  /** tools answered by `fallback` instead of in memory (default: none) */
  real?: readonly FakeTool[];
  /** where real tools (and anything unknown) run; without it they fail to spawn */
  fallback?: CommandRunner;
  /** false: no ip_vs (ipvsadm fails, /proc/net/ip_vs is missing, no net.ipv4.vs sysctls) */
  ipvsLoaded?: boolean;
}

export class FakeNode implements CommandRunner {
  readonly ipvsadm: FakeIpvsadm;
  readonly ipset = new FakeIpset();
  readonly ip = new FakeIp();
  readonly iptables = new FakeIptables();
  readonly sysctl: FakeSysctl;
  readonly calls: RecordedCall[] = [];
  private readonly real: ReadonlySet<FakeTool>;
  private readonly fallback: CommandRunner | undefined;

  constructor(options: FakeNodeOptions = {}) {
    const loaded = options.ipvsLoaded ?? true;
    this.ipvsadm = new FakeIpvsadm({ loaded });
    const sysctls = ipvsNodeSysctls();
    if (!loaded) for (const k of Object.keys(sysctls)) if (k.startsWith('net.ipv4.vs.')) delete sysctls[k];
    this.sysctl = new FakeSysctl(sysctls);
    this.real = new Set(options.real ?? []);
    this.fallback = options.fallback;
    this.ipset.references = (name) => this.iptables.setReferences(name);
    this.iptables.setExists = (name) => this.ipset.has(name);
  }

  private toolOf(cmd: string, args: readonly string[]): FakeTool | 'test' | null {
    if (cmd === 'ipvsadm' || cmd === 'ipset' || cmd === 'sysctl') return cmd;
    if (cmd === 'ip') return args[0] === 'netns' ? null : 'ip';
    if (FakeIptables.handles(cmd)) return 'iptables';
    if (cmd === 'test' && args[0] === '-e' && args[1] === '/proc/net/ip_vs') return 'test';
    return null;
  }

  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const call: RecordedCall = { cmd, args: [...args] };
    if (options.input !== undefined) call.input = inputText(options.input);
    this.calls.push(call);
    const tool = this.toolOf(cmd, args);
    if (tool === null || (tool !== 'test' && this.real.has(tool))) {
      if (!this.fallback) {
        throw new CommandError(
          cmd,
          args,
          { stdout: '', stderr: '', exitCode: -1 },
          'spawn',
          `spawn ${cmd} ENOENT`,
        );
      }
      return this.fallback.run(cmd, args, options);
    }
    const input = call.input ?? '';
    let result: RunResult;
    switch (tool) {
      case 'ipvsadm':
        result = this.ipvsadm.run(args, input);
        break;
      case 'ipset':
        result = this.ipset.run(args, input);
        break;
      case 'ip':
        result = this.ip.run(args, input);
        break;
      case 'sysctl':
        result = this.sysctl.run(args);
        break;
      case 'iptables':
        result = this.iptables.run(cmd, args, input);
        break;
      case 'test':
        result = { stdout: '', stderr: '', exitCode: this.ipvsadm.loaded ? 0 : 1 };
        break;
    }
    return honourReject(cmd, args, result, options);
  }

  /** Calls to `cmd` since `from` (an index into `calls`). */
  callsTo(cmd: string, from = 0): RecordedCall[] {
    return this.calls.slice(from).filter((c) => c.cmd === cmd);
  }
}
