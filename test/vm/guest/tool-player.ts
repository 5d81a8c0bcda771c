/**
 * Plays command scripts (test/ipvs-apply/tool-scripts.ts) through a real tool and through
 * its in-memory double, for the guest's conformance check.
 *
 * The real side runs every step of every script from ONE shell script in the namespace:
 * in the guest each process start costs ~120 ms but each execa call ~0.7 s, so a hundred
 * steps take seconds this way rather than over a minute. Each step's stdin comes from a
 * file and its stdout, stderr and exit code go to files, read back afterwards.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandRunner, RunResult } from '../../../src/kernel/exec.js';
import type { StepOutcome, ToolScript, ToolStep } from '../../ipvs-apply/tool-scripts.js';

export interface PlayPlan {
  tool: string;
  scripts: readonly ToolScript[];
  /** shell lines run once before everything (not recorded), e.g. a sysctl */
  prelude?: readonly string[];
  /** run after each script's steps, recorded (the state it left) */
  finals?: readonly ToolStep[];
  /** run after each script, not recorded (back to a clean state) */
  reset?: readonly ToolStep[];
}

/** Quotes a word for sh. */
const shQuote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

/** Each script's outcomes: its steps, then the finals. */
export type Played = StepOutcome[][];

/** Plays the plan through the real tool: one `sh` run in `runner`'s namespace. */
export async function playReal(runner: CommandRunner, plan: PlayPlan): Promise<Played> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-play-'));
  try {
    const lines = ['set +e', `cd ${shQuote(dir)}`, ...(plan.prelude ?? [])];
    const counts: number[] = [];
    let k = 0;
    const command = (step: ToolStep) => [plan.tool, ...step.args].map(shQuote).join(' ');
    for (const script of plan.scripts) {
      const steps = [...script.steps, ...(plan.finals ?? [])];
      counts.push(steps.length);
      for (const step of steps) {
        writeFileSync(join(dir, `in.${k}`), step.input ?? '');
        lines.push(`${command(step)} <in.${k} >out.${k} 2>err.${k}; echo $? >rc.${k}`);
        k++;
      }
      for (const step of plan.reset ?? []) lines.push(`${command(step)} </dev/null >/dev/null 2>&1`);
    }
    writeFileSync(join(dir, 'play.sh'), `${[...lines, 'exit 0'].join('\n')}\n`);
    await runner.run('sh', [join(dir, 'play.sh')], { timeoutMs: 5 * 60_000 });
    const played: Played = [];
    let at = 0;
    for (const count of counts) {
      const outcomes: StepOutcome[] = [];
      for (let i = 0; i < count; i++, at++) {
        outcomes.push({
          exitCode: Number(readFileSync(join(dir, `rc.${at}`), 'utf8').trim()),
          stdout: readFileSync(join(dir, `out.${at}`), 'utf8'),
          stderr: readFileSync(join(dir, `err.${at}`), 'utf8'),
        });
      }
      played.push(outcomes);
    }
    return played;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Plays the plan through a double: `fresh()` gives a new one per script (what reset does). */
export function playDouble(
  plan: PlayPlan,
  fresh: () => { run(args: readonly string[], input: string): RunResult },
): Played {
  return plan.scripts.map((script) => {
    const tool = fresh();
    return [...script.steps, ...(plan.finals ?? [])].map((step) => {
      const r = tool.run(step.args, step.input ?? '');
      return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
    });
  });
}

/**
 * Where the double and the real tool differ, one readable entry per step; `normalise`
 * takes out what legitimately varies (random MACs, hash seeds).
 */
export function differences(
  plan: PlayPlan,
  real: Played,
  double: Played,
  normalise: (o: StepOutcome, step: ToolStep) => StepOutcome = (o) => o,
): string[] {
  const out: string[] = [];
  plan.scripts.forEach((script, s) => {
    const steps = [...script.steps, ...(plan.finals ?? [])];
    steps.forEach((step, i) => {
      const r = normalise(real[s]![i]!, step);
      const d = normalise(double[s]![i]!, step);
      if (r.exitCode === d.exitCode && r.stdout === d.stdout && r.stderr === d.stderr) return;
      const label = `${plan.tool} ${step.args.join(' ')}${step.input === undefined ? '' : ` <<< ${JSON.stringify(step.input)}`}`;
      const final = i >= script.steps.length ? ' (state after the script)' : '';
      out.push(
        `[${script.name}] step ${i + 1}${final}: ${label}\n` +
          `  real:   exit ${r.exitCode} stdout ${JSON.stringify(r.stdout)} stderr ${JSON.stringify(r.stderr)}\n` +
          `  double: exit ${d.exitCode} stdout ${JSON.stringify(d.stdout)} stderr ${JSON.stringify(d.stderr)}`,
      );
    });
  });
  return out;
}
