/**
 * IPVS mode through the real command line: `render --mode ipvs [--section]`, `run --dry-run`
 * in IPVS mode, and `--log-format`. Each CLI start costs about a
 * second, so the runs start together in beforeAll and the tests read their results.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatIpvsState, formatSection } from '../../src/backends/ipvs/format.js';
import { neutralHostFacts } from '../../src/config/host.js';
import { loadKubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import { readManifests } from '../../src/sources/manifests.js';
import { renderIpvsOnce } from '../../src/sync/render-once.js';
import { blocks, logRecords, ROOT, startCli } from '../support/cli.js';

const EXAMPLE = join(ROOT, 'fixtures/example');
const FROM = ['--from', join(EXAMPLE, 'cluster.yaml')];
const CONFIG = ['--config', join(EXAMPLE, 'config.yaml')];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function cli(...args: string[]): Promise<Result> {
  const run = startCli(args);
  const { code } = await run.exit;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

let dir = '';
const runs: Record<string, Result> = {};

async function expectedState() {
  const { config } = loadKubeProxyConfiguration(await readFile(join(EXAMPLE, 'config.yaml'), 'utf8'), 'c', {
    mode: 'ipvs',
  });
  const { events } = await readManifests([join(EXAMPLE, 'cluster.yaml')]);
  return renderIpvsOnce({ events, config, host: neutralHostFacts(), family: 'IPv4' }).render;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchboard-ipvs-cli-'));
  const badConfig = join(dir, 'bad.yaml');
  await writeFile(
    badConfig,
    'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  scheduler: fastest\n',
  );
  const entries = await Promise.all([
    cli('render', ...FROM, ...CONFIG, '--mode', 'ipvs'),
    cli('render', ...FROM, ...CONFIG, '--mode', 'ipvs', '--section', 'ipset'),
    cli('render', ...FROM, ...CONFIG, '--section', 'ipset'),
    cli('render', ...FROM, '--config', badConfig),
    cli('run', '--once', '--dry-run', ...FROM, ...CONFIG, '--mode', 'ipvs', '--family', 'ipv4'),
    cli('--log-format', 'text', 'render', ...FROM, ...CONFIG, '--mode', 'ipvs', '--section', 'kube-ipvs0'),
  ]);
  const names = ['full', 'section', 'sectionIptables', 'badScheduler', 'runDry', 'textLogs'];
  names.forEach((name, i) => {
    runs[name] = entries[i]!;
  });
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('switchboard render --mode ipvs', () => {
  it('prints the four sections of the desired state, the same as the renderer', async () => {
    const r = runs.full!;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(formatIpvsState(await expectedState()));
    const log = logRecords(r.stderr).find((l) => l.msg === 'rendered');
    expect(log).toMatchObject({ mode: 'ipvs', family: 'IPv4', virtualServers: 15 });
  });

  it('--section prints one body alone', async () => {
    const r = runs.section!;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(formatSection(await expectedState(), 'ipset'));
    expect(r.stdout.startsWith('create KUBE-CLUSTER-IP hash:ip,port')).toBe(true);
  });

  it('--section in iptables mode: exit 2 and a clear message', () => {
    const r = runs.sectionIptables!;
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/switchboard: --section ipset: sections exist in IPVS mode only/);
  });

  it('an unknown scheduler: exit 2 naming file, line and field', () => {
    const r = runs.badScheduler!;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/switchboard: \S*bad\.yaml:5: ipvs\.scheduler: must be one of rr, .*mh/);
  });
});

describe('switchboard run in IPVS mode', () => {
  it('--dry-run prints each sync as its four sections after the sync header', async () => {
    const r = runs.runDry!;
    expect(r.code, r.stderr).toBe(0);
    const byHeader = blocks(r.stdout);
    expect([...byHeader.keys()]).toEqual(['# sync 1 full IPv4']);
    expect(byHeader.get('# sync 1 full IPv4')).toBe(formatIpvsState(await expectedState()));
  });
});

describe('--log-format', () => {
  it('text: readable lines on stderr, not JSON', () => {
    const r = runs.textLogs!;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe('10.96.0.10');
    expect(r.stderr).toMatch(/INFO.*: rendered/);
    expect(r.stderr.split('\n').some((l) => l.startsWith('{'))).toBe(false);
  });
});
