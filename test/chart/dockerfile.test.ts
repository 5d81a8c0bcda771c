// A cheap guard on the Dockerfile's essentials, read as text (there is no Docker engine to build it here):
// Node 20 slim bases, the kernel tools installed, only production files copied into the runtime stage,
// and the entrypoint the Helm chart's args are written for.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helm.js';

interface Instruction {
  keyword: string;
  args: string;
}

interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions, joining `\` continuations and dropping comments. */
function parseDockerfile(text: string): Stage[] {
  const logicalLines: string[] = [];
  let pending = '';
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    // Docker skips comment and empty lines, also inside a continuation.
    if (line === '' || line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    logicalLines.push(pending + line);
    pending = '';
  }
  const stages: Stage[] = [];
  for (const line of logicalLines) {
    const match = /^(\S+)\s+(.*)$/.exec(line);
    if (!match) throw new Error(`Dockerfile: cannot read instruction "${line}"`);
    const keyword = match[1]!.toUpperCase();
    const args = match[2]!.replace(/\s+/g, ' ');
    if (keyword === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!from) throw new Error(`Dockerfile: cannot read FROM "${args}"`);
      stages.push({ from: from[1]!, name: from[2], instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`Dockerfile: ${keyword} before any FROM`);
      stage.instructions.push({ keyword, args });
    }
  }
  return stages;
}

function argsOf(stage: Stage, keyword: string): string[] {
  return stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);
}

describe('Dockerfile', () => {
  const stages = parseDockerfile(readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8'));
  const build = stages[0]!;
  const runtime = stages.at(-1)!;

  it('builds on Node 20 slim in two stages', () => {
    expect(stages).toHaveLength(2);
    expect(stages.map((s) => s.from)).toEqual(['node:20-bookworm-slim', 'node:20-bookworm-slim']);
    expect(build.name).toBeDefined();
  });

  it('compiles with npm ci and npm run build, then prunes dev dependencies', () => {
    const run = argsOf(build, 'RUN').join(' && ');
    const order = ['npm ci', 'npm run build', 'npm prune --omit=dev'].map((step) => run.indexOf(step));
    expect(order.every((position) => position >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
  });

  it('installs the kernel tools without recommends and cleans the apt lists', () => {
    const run = argsOf(runtime, 'RUN').join(' && ');
    const install = /apt-get install ([^&;]*)/.exec(run)?.[1]?.split(' ') ?? [];
    expect(install).toContain('--no-install-recommends');
    expect(install).toEqual(
      expect.arrayContaining(['iptables', 'ipset', 'ipvsadm', 'conntrack', 'iproute2', 'procps']),
    );
    expect(run).toContain('apt-get update');
    expect(run).toContain('rm -rf /var/lib/apt/lists/*');
  });

  it('copies only build output, pruned node_modules and package.json into the runtime stage', () => {
    const copies = argsOf(runtime, 'COPY');
    expect(copies).toHaveLength(3);
    for (const copy of copies) expect(copy).toMatch(new RegExp(`^--from=${build.name} `));
    const sources = copies.map((copy) => copy.split(' ')[1]);
    expect(sources.sort()).toEqual(['/app/dist', '/app/node_modules', '/app/package.json']);
    // The build stage's node_modules is only production dependencies after the prune.
    expect(argsOf(build, 'RUN').some((run) => run.includes('npm prune --omit=dev'))).toBe(true);
  });

  it('runs as root with the CLI as entrypoint and `run --config` as default command', () => {
    expect(argsOf(runtime, 'USER')).toEqual([]);
    expect(argsOf(runtime, 'ENTRYPOINT').map((a) => JSON.parse(a))).toEqual([
      ['node', '/app/dist/src/cli.js'],
    ]);
    expect(argsOf(runtime, 'CMD').map((a) => JSON.parse(a))).toEqual([
      ['run', '--config', '/etc/switchboard/config.yaml'],
    ]);
  });

  it('keeps local build output, dependencies and test data out of the build context', () => {
    const ignored = readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    expect(ignored).toEqual(
      expect.arrayContaining(['node_modules', 'dist', '.git', '.cache', 'test', 'fixtures', 'bench']),
    );
  });
});
