/**
 * `npm run bench`: render benchmarks on synthetic clusters.
 *
 * Without arguments it runs every scenario in a fresh child process
 * (`node --import tsx bench/render.bench.ts --scenario 10000x10`), so each one's peak RSS
 * is its own, then prints a table, the targets and one JSON line per scenario. With
 * `--scenario NAME` it is that child: it runs one scenario and prints `RESULT <json>`.
 * `--compiled` runs the children on tsc output instead of tsx (see compile.ts).
 * Exits non-zero when a partial render does not write exactly what it should.
 */
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compileBench } from './compile.js';
import { checkTargets, jsonLine, resultsTable, targetLines } from './report.js';
import { runScenario, type ScenarioResult } from './scenario.js';
import { DEFAULT_NODES, DEFAULT_SEED } from './synthetic-cluster.js';

const DEFAULT_SCENARIOS = ['1000x10', '10000x10'];
const RESULT_PREFIX = 'RESULT ';
const thisFile = fileURLToPath(import.meta.url);
const repoRoot = resolve(dirname(thisFile), '..');

/** How a child is started: the TypeScript source through tsx, or a compiled entry point. */
type ChildCommand = readonly string[];

function runChild(command: ChildCommand, scenario: string): ScenarioResult | null {
  process.stderr.write(`running ${scenario} ...\n`);
  const child = spawnSync(process.execPath, [...command, '--scenario', scenario], {
    cwd: repoRoot,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const line = child.stdout?.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
  if (!line) {
    process.stderr.write(child.stderr ?? '');
    console.log(
      `FAIL ${scenario}: the child process produced no result (exit ${child.status ?? child.signal})`,
    );
    return null;
  }
  return JSON.parse(line.slice(RESULT_PREFIX.length)) as ScenarioResult;
}

function runAll(scenarios: readonly string[], compiled: boolean): number {
  const command = compiled ? [compileBench(repoRoot, thisFile)] : ['--import', 'tsx', thisFile];
  console.log(
    `runtime: ${compiled ? 'tsc output (--compiled)' : 'tsx (esbuild keepNames wrappers included; --compiled for tsc output)'}, node ${process.version}`,
  );
  const results: ScenarioResult[] = [];
  let failed = false;
  for (const scenario of scenarios) {
    const result = runChild(command, scenario);
    if (!result) failed = true;
    else results.push(result);
  }
  if (results.length > 0) {
    console.log(resultsTable(results));
    console.log('');
    for (const line of targetLines(checkTargets(results))) console.log(line);
    console.log('');
  }
  for (const r of results) {
    if (r.failures.length === 0) {
      console.log(
        `verified ${r.scenario}: partial renders write exactly the expected chains; kernel model matches a full render`,
      );
    }
    for (const f of r.failures) console.log(`FAIL ${r.scenario}: ${f}`);
    if (r.failures.length > 0) failed = true;
  }
  for (const r of results) console.log(jsonLine(r));
  return failed ? 1 : 0;
}

function main(): number {
  const { values } = parseArgs({
    options: { scenario: { type: 'string' }, scenarios: { type: 'string' }, compiled: { type: 'boolean' } },
    strict: true,
  });
  if (values.scenario !== undefined) {
    const result = runScenario(values.scenario, { nodes: DEFAULT_NODES, seed: DEFAULT_SEED });
    console.log(RESULT_PREFIX + JSON.stringify(result));
    return result.failures.length > 0 ? 1 : 0;
  }
  return runAll(values.scenarios ? values.scenarios.split(',') : DEFAULT_SCENARIOS, values.compiled === true);
}

process.exitCode = main();
