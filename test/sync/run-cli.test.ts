/**
 * `switchboard run` end to end through the CLI, as a child process.
 */
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointChain, serviceChains } from '../../src/backends/iptables/chain-names.js';
import {
  blocks,
  killRuns,
  LOOPBACK_SERVERS,
  listeningAddress,
  ROOT,
  startCli,
  startSynced,
  syncedLogs,
  terminate,
  waitFor,
} from '../support/cli.js';

const EXAMPLE = join(ROOT, 'fixtures/example');

let tempDir: string | null = null;
afterEach(async () => {
  await killRuns();
  if (tempDir) await rm(tempDir, { recursive: true, force: true });
  tempDir = null;
});

describe('switchboard run', () => {
  it('--once --dry-run prints one full sync per family and exits 0', async () => {
    const running = startCli([
      'run',
      '--once',
      '--dry-run',
      '--from',
      join(EXAMPLE, 'cluster.yaml'),
      '--config',
      join(EXAMPLE, 'config.yaml'),
    ]);
    const { code } = await running.exit;
    expect(code, running.stderr()).toBe(0);
    const stdout = running.stdout();
    expect(stdout.startsWith('# sync 1 full IPv4\n')).toBe(true);
    const byHeader = blocks(stdout);
    expect([...byHeader.keys()]).toEqual(['# sync 1 full IPv4', '# sync 1 full IPv6']);
    // The same code as `render`: the IPv4 block is the golden rule set.
    expect(byHeader.get('# sync 1 full IPv4')).toBe(await readFile(join(EXAMPLE, 'iptables.rules'), 'utf8'));
    // A v4-only cluster: the IPv6 backend writes just the fixed chains.
    expect(byHeader.get('# sync 1 full IPv6')).not.toMatch(/KUBE-(SVC|SEP)-/);
    expect(syncedLogs(running.stderr())).toMatchObject([{ seq: 1, full: true }]);
  });

  it('rejects an unknown --family', async () => {
    const running = startCli(['run', '--once', '--dry-run', '--from', EXAMPLE, '--family', 'ipv5']);
    const { code } = await running.exit;
    expect(code).not.toBe(0);
    expect(running.stderr()).toContain('must be ipv4, ipv6 or dual');
  });

  it('--dry-run follows a manifest change with a partial sync of just that service, and stops on SIGTERM', async () => {
    tempDir = await mkdtemp(join(tmpdir(), 'switchboard-run-'));
    const cluster = join(tempDir, 'cluster.yaml');
    await copyFile(join(EXAMPLE, 'cluster.yaml'), cluster);
    await copyFile(join(EXAMPLE, 'config.yaml'), join(tempDir, 'config.yaml'));
    const run = await startSynced([
      'run',
      '--dry-run',
      '--from',
      cluster,
      '--config',
      join(tempDir, 'config.yaml'),
      // ephemeral ports: the test must not depend on 10256/10249 being free
      ...LOOPBACK_SERVERS,
    ]);
    expect(run.stdout().startsWith('# sync 1 full IPv4\n')).toBe(true);

    // One endpoint of shop/web moves: 10.244.2.20 -> 10.244.2.21.
    const text = await readFile(cluster, 'utf8');
    expect(text).toMatch(/- 10\.244\.2\.20\n/);
    await writeFile(cluster, text.replace(/- 10\.244\.2\.20\n/, '- 10.244.2.21\n'));
    await waitFor(() => syncedLogs(run.stderr()).length === 2, 'the second sync');
    await waitFor(() => blocks(run.stdout()).has('# sync 2 partial IPv6'), 'the IPv6 block');

    const byHeader = blocks(run.stdout());
    const v4 = byHeader.get('# sync 2 partial IPv4');
    expect(v4, run.stdout().slice(0, 200)).toBeDefined();
    const declared = [...v4!.matchAll(/^:(KUBE-(?:SVC|SVL|SEP|EXT|FW)-\S+) /gm)].map((m) => m[1]).sort();
    const sep = (ip: string) => endpointChain('shop/web:http', 'TCP', `${ip}:8080`);
    expect(declared).toEqual(
      [
        serviceChains('shop/web:http', 'TCP').svc,
        sep('10.244.1.10'),
        sep('10.244.1.11'),
        sep('10.244.2.20'),
        sep('10.244.2.21'),
      ].sort(),
    );
    expect([...v4!.matchAll(/^-X (\S+)$/gm)].map((m) => m[1])).toEqual([sep('10.244.2.20')]);
    expect(byHeader.get('# sync 2 partial IPv6')).not.toMatch(/KUBE-(SVC|SEP)-/);

    // The health and metrics servers run alongside, over real HTTP.
    const listening = (what: string) => {
      const address = listeningAddress(run.stderr(), what);
      expect(address, `${what} server address in the log`).not.toBeNull();
      return address!;
    };
    const healthz = await fetch(`http://${listening('healthz')}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.json()).toMatchObject({ healthy: true, nodeEligible: true });
    const metrics = await (await fetch(`http://${listening('metrics')}/metrics`)).text();
    expect(metrics).toMatch(
      /^kubeproxy_sync_partial_proxy_rules_duration_seconds_count\{ip_family="IPv4"\} 1$/m,
    );
    expect(metrics).toMatch(/^kubeproxy_proxy_healthz_total\{code="200"\} 1$/m);

    expect(await terminate(run)).toEqual({ code: 0, signal: null });
    expect(run.stderr()).toContain('stopping; the rules stay in place');
  });
});
