/**
 * Reading a namespace's iptables state back in a comparable form, and a runner wrapper
 * that records (and can sabotage) what the applier sends.
 */
import type { Backend } from '../../src/kernel/backend.js';
import { iptablesBinary } from '../../src/kernel/backend.js';
import {
  type CommandRunner,
  inputText,
  type RecordedCall,
  type RunOptions,
  type RunResult,
} from '../../src/kernel/exec.js';
import type { IPFamily } from '../../src/model/ip.js';

/**
 * `iptables-save` output normalised for comparison: the given tables in name order, each
 * chain (sorted by name) with its policy and its rules in kernel order; counters and
 * comments dropped. Chains whose name matches `only` are kept (built-in chains keep only
 * the rules that jump to a kept chain).
 */
export function normalizeSave(text: string, tables: readonly string[], only: RegExp = /^KUBE-/): string {
  const blocks = new Map<string, string[]>(tables.map((t) => [t, []]));
  let body: string[] | undefined;
  let chains = new Map<string, { policy: string; rules: string[] }>();
  const targetOf = (rule: string) => / -[jg] (\S+)/.exec(rule)?.[1] ?? '';
  const flush = () => {
    if (!body) return;
    for (const name of [...chains.keys()].sort()) {
      const c = chains.get(name)!;
      const builtin = c.policy !== '-';
      if (builtin) {
        const jumps = c.rules.filter((r) => only.test(targetOf(r)));
        if (jumps.length > 0) body.push(`:${name} ${c.policy}`, ...jumps);
      } else if (only.test(name)) {
        body.push(`:${name} -`, ...c.rules);
      }
    }
  };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      body = blocks.get(line.slice(1));
      chains = new Map();
    } else if (line === 'COMMIT') {
      flush();
      body = undefined;
    } else if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(/\s+/);
      chains.set(name!, { policy: policy ?? '-', rules: [] });
    } else if (line.startsWith('-A ')) {
      const chain = line.split(/\s+/, 2)[1]!;
      let c = chains.get(chain);
      if (!c) {
        c = { policy: '?', rules: [] };
        chains.set(chain, c);
      }
      c.rules.push(line);
    }
  }
  // A table absent from the output prints like an empty one.
  return [...blocks.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([name, lines]) => [`*${name}`, ...lines, 'COMMIT'].join('\n'))
    .join('\n');
}

/** The namespace's nat and filter KUBE-* state (and the built-in rules jumping into it). */
export async function kubeState(runner: CommandRunner, backend: Backend, family: IPFamily): Promise<string> {
  const { stdout } = await runner.run(iptablesBinary(backend, family, 'save'), []);
  return normalizeSave(stdout, ['filter', 'nat']);
}

/** Every chain of every table, as `table chain` lines. */
export async function allChains(
  runner: CommandRunner,
  backend: Backend,
  family: IPFamily,
): Promise<string[]> {
  const { stdout } = await runner.run(iptablesBinary(backend, family, 'save'), []);
  const out: string[] = [];
  let table = '';
  for (const line of stdout.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith(':')) out.push(`${table} ${line.slice(1).split(' ')[0]}`);
  }
  return out.sort();
}

export type Sabotage = (call: RecordedCall) => RecordedCall | { fail: RunResult } | undefined;

/**
 * Wraps a runner: records every call (with its stdin), and lets a test rewrite or fail
 * the next matching call.
 */
export class TapRunner implements CommandRunner {
  readonly calls: RecordedCall[] = [];
  private sabotage: Sabotage | undefined;

  constructor(private readonly inner: CommandRunner) {}

  /** Applies `fn` to calls until it returns something other than undefined, once. */
  sabotageNext(fn: Sabotage): void {
    this.sabotage = fn;
  }

  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    let call: RecordedCall = { cmd, args: [...args] };
    if (options.input !== undefined) call.input = inputText(options.input);
    if (this.sabotage) {
      const action = this.sabotage(call);
      if (action !== undefined) {
        this.sabotage = undefined;
        if ('fail' in action) {
          this.calls.push(call);
          if (options.reject === false) return action.fail;
          throw new Error(`${cmd}: sabotaged (exit ${action.fail.exitCode})`);
        }
        call = action;
      }
    }
    this.calls.push(call);
    const next: RunOptions = { ...options };
    if (call.input !== undefined) next.input = call.input;
    return this.inner.run(call.cmd, call.args, next);
  }

  restoreInputs(): string[] {
    return this.calls.filter((c) => c.cmd.endsWith('-restore')).map((c) => c.input ?? '');
  }

  clear(): void {
    this.calls.length = 0;
  }
}
