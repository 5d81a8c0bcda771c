/**
 * Bad input through the real command line. Each CLI start costs about a second, so the five
 * runs start together in beforeAll and the tests read their results.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type Result } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadKubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import { ep, type Raw, serviceObject, sliceObject } from '../unit/objects.js';
import { baseObjects, host, render, toYaml } from './cluster.js';

const ROOT = new URL('../../', import.meta.url).pathname;

const CONFIG = [
  'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
  'kind: KubeProxyConfiguration',
  'hostnameOverride: node-1',
  'clusterCIDR: 10.244.0.0/16',
  '',
].join('\n');

const BAD_CONFIG = [
  'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
  'kind: KubeProxyConfiguration',
  'hostnameOverride: node-1',
  'iptables:',
  '  masqueradeBit: 40', // line 5
  '',
].join('\n');

const BAD_HOST = ['kind: HostFacts', 'nodeName: node-1', 'interfaces:', '  eth0: ["192.168.0.2"]', ''].join(
  '\n',
); // line 4

const BAD_YAML = [
  'apiVersion: v1',
  'kind: Service',
  'metadata:',
  '  name: x',
  'metadata:', // line 5: duplicate key
  '  name: y',
  '',
].join('\n');

// The bad objects, and what they leave of the cluster.
const badService = serviceObject('broken', { spec: { clusterIP: '10.0.0.300' } });
const unlabelled = sliceObject('stray', [ep('10.180.9.9')], { service: null });
const goodEndpoint = ep('10.180.0.7', { nodeName: 'node-2' });
const withBadEndpoint = sliceObject('svc1-more', [goodEndpoint, ep('10.180.0.999')], {
  ports: [{ name: 'p80', port: 8080, protocol: 'TCP' }],
});
const cleanedSlice = sliceObject('svc1-more', [goodEndpoint], {
  ports: [{ name: 'p80', port: 8080, protocol: 'TCP' }],
});

let dir = '';
const runs: Record<string, Result> = {};

function cli(...args: string[]) {
  // `node --import tsx` is what `npx tsx` runs, without npm's start-up cost.
  return execa(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'render', ...args], {
    cwd: ROOT,
    reject: false,
    timeout: 60_000,
    env: { SWITCHBOARD_LOG_LEVEL: 'info' },
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchboard-bad-input-'));
  const file = (name: string) => join(dir, name);
  const manifest = `${toYaml([...baseObjects(), badService, unlabelled, withBadEndpoint])}---\n- a list, not an object\n`;
  await Promise.all([
    writeFile(file('cluster.yaml'), manifest),
    writeFile(file('config.yaml'), CONFIG),
    writeFile(file('bad-config.yaml'), BAD_CONFIG),
    writeFile(file('bad-host.yaml'), BAD_HOST),
    writeFile(file('bad.yaml'), BAD_YAML),
  ]);
  const [objects, badYaml, badConfig, badHost, missing] = await Promise.all([
    cli('--from', file('cluster.yaml'), '--config', file('config.yaml')),
    cli('--from', file('bad.yaml'), '--config', file('config.yaml')),
    cli('--from', file('cluster.yaml'), '--config', file('bad-config.yaml')),
    cli('--from', file('cluster.yaml'), '--config', file('config.yaml'), '--host', file('bad-host.yaml')),
    cli('--from', file('does-not-exist.yaml'), '--config', file('config.yaml')),
  ]);
  Object.assign(runs, { objects, badYaml, badConfig, badHost, missing });
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('switchboard render with malformed objects', () => {
  it('renders everything else exactly as without them', () => {
    const r = runs.objects!;
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const { config } = loadKubeProxyConfiguration(CONFIG, 'config.yaml');
    const clean = [...baseObjects(), cleanedSlice];
    const expected = render({ objects: clean, config, host: { ...host(), nodeName: undefined } });
    expect(expected.problems).toEqual([]);
    expect(r.stdout).toBe(expected.render.text.replace(/\n$/, ''));
  });

  it('reports each one on stderr with kind, namespace/name and field', () => {
    const stderr = String(runs.objects!.stderr);
    for (const [message, field] of [
      ['Service ns1/broken: spec.clusterIP', 'spec.clusterIP'],
      ['EndpointSlice ns1/stray: metadata.labels["kubernetes.io/service-name"]', 'metadata.labels'],
      ['EndpointSlice ns1/svc1-more: endpoints[1].addresses[0]', 'endpoints[1].addresses[0]'],
    ] as const) {
      const line = stderr.split('\n').find((l) => l.includes(message.replace(/"/g, '\\"')));
      expect(line, `${message} in\n${stderr}`).toBeDefined();
      const entry = JSON.parse(line!) as { level: number; field: string; object: Raw };
      expect(entry.level).toBe(40);
      expect(entry.field).toContain(field);
      expect(entry.object).toMatchObject({ namespace: 'ns1' });
    }
    expect(stderr).toMatch(/cluster\.yaml document \d+: not an object, ignored/);
  });
});

describe('switchboard render with bad files', () => {
  const expectFailure = (r: Result, pattern: RegExp) => {
    expect(r.exitCode, String(r.stderr)).toBe(2);
    expect(r.stdout).toBe('');
    expect(String(r.stderr)).toMatch(pattern);
  };

  it('a malformed YAML manifest: exit 2, file and line', () => {
    expectFailure(runs.badYaml!, /switchboard: \S*bad\.yaml:5:1: duplicated mapping key/);
  });

  it('a malformed configuration file: exit 2, file, line and field', () => {
    expectFailure(runs.badConfig!, /switchboard: \S*bad-config\.yaml:5: iptables\.masqueradeBit: /);
  });

  it('a bad host file: exit 2, file, line and field', () => {
    expectFailure(runs.badHost!, /switchboard: \S*bad-host\.yaml:4: interfaces\.eth0\[0\]: /);
  });

  it('a missing --from path: exit 2 and a clear message', () => {
    expectFailure(runs.missing!, /switchboard: \S*does-not-exist\.yaml: no such file or directory/);
  });
});
