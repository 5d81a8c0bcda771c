/**
 * `switchboard run` (real iptables, no dry-run) inside a scratch network namespace: it applies
 * the per-namespace conntrack timeouts there, lowers its own OOM score, and serves /configz.
 *
 * The global settings (nf_conntrack_max, the hash size) are host-wide: the configuration sets
 * conntrack.maxPerCore to 0 so that the run does not even look at them; their decisions are
 * unit-tested with a fake (test/unit/conntrack-settings.test.ts).
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import {
  killRuns,
  LOOPBACK_SERVERS,
  listeningAddress,
  logRecords,
  NO_SERVERS,
  ROOT,
  type Run,
  startSynced,
  terminate,
} from '../support/cli.js';
import { createScratchNetns, type ScratchNetns } from './netns.js';
import { describeKernel } from './require-root.js';

const ESTABLISHED = '/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established';
const CLOSE_WAIT = '/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait';
const MAX = '/proc/sys/net/netfilter/nf_conntrack_max';

/** Lowering oom_score_adj needs CAP_SYS_RESOURCE (capability 24); the run inherits this process's. */
const effectiveCaps = BigInt(
  `0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'}`,
);
const canLowerOomScore = (effectiveCaps & (1n << 24n)) !== 0n;
const ownOomScoreAdj = readFileSync('/proc/self/oom_score_adj', 'utf8').trim();

let scratch: ScratchNetns | null = null;
let dir: string | null = null;

afterEach(async () => {
  await killRuns();
  await scratch?.teardown();
  scratch = null;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = null;
});

async function readIn(ns: ScratchNetns, path: string): Promise<string> {
  return (await ns.runner.run('cat', [path])).stdout.trim();
}

/**
 * `switchboard run` (real iptables) from the example cluster in `ns`, IPv4, with a
 * configuration of `lines` written into a new directory; resolves after its first sync.
 */
async function startRunIn(
  ns: ScratchNetns,
  dirPrefix: string,
  servers: readonly string[],
  lines: readonly string[],
): Promise<Run> {
  dir = await mkdtemp(join(tmpdir(), dirPrefix));
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    ['apiVersion: kubeproxy.config.k8s.io/v1alpha1', 'kind: KubeProxyConfiguration', ...lines, ''].join('\n'),
  );
  return startSynced(
    [
      'run',
      '--from',
      join(ROOT, 'fixtures/example/cluster.yaml'),
      '--config',
      config,
      '--family',
      'ipv4',
      ...servers,
    ],
    { prefix: ['ip', 'netns', 'exec', ns.ns] },
  );
}

describeKernel('run applies the node settings at start', () => {
  it('sets the conntrack timeouts in its namespace, its oom_score_adj to -999, and serves /configz', async () => {
    scratch = await createScratchNetns();
    const ns = scratch;
    // A new namespace starts with the kernel's defaults: 5 days and 60 s.
    expect(await readIn(ns, ESTABLISHED)).toBe('432000');
    expect(await readIn(ns, CLOSE_WAIT)).toBe('60');
    const hostMax = await readFile(MAX, 'utf8');

    const run = await startRunIn(ns, 'sb-run-settings-', LOOPBACK_SERVERS, [
      'hostnameOverride: node-1',
      'clusterCIDR: 10.244.0.0/16',
      'conntrack:',
      '  maxPerCore: 0   # never the host-wide table size from a test',
    ]);

    expect(await readIn(ns, ESTABLISHED)).toBe('86400');
    expect(await readIn(ns, CLOSE_WAIT)).toBe('3600');
    const oomScoreAdj = (await readFile(`/proc/${run.child.pid}/oom_score_adj`, 'utf8')).trim();
    if (canLowerOomScore) {
      expect(oomScoreAdj).toBe('-999');
    } else {
      // Without CAP_SYS_RESOURCE (some sandboxes drop it) the kernel refuses a lower score: logged, not fatal.
      expect(oomScoreAdj).toBe(ownOomScoreAdj);
      expect(run.stderr()).toContain(`could not set this process's oom_score_adj to -999`);
    }
    expect(await readFile(MAX, 'utf8')).toBe(hostMax);

    const logs = logRecords(run.stderr());
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'set net.netfilter.nf_conntrack_tcp_timeout_established',
        from: 432000,
        to: 86400,
      }),
    );
    expect(logs).toContainEqual(
      expect.objectContaining({
        msg: 'set net.netfilter.nf_conntrack_tcp_timeout_close_wait',
        from: 60,
        to: 3600,
      }),
    );
    if (canLowerOomScore)
      expect(logs).toContainEqual(expect.objectContaining({ msg: 'set oom_score_adj', to: -999 }));
    expect(logs.some((l) => l.msg.includes('nf_conntrack_max') || l.msg.includes('hashsize'))).toBe(false);

    // /configz listens on the namespace's loopback: ask from inside.
    const metrics = listeningAddress(run.stderr(), 'metrics');
    expect(metrics).not.toBeNull();
    const fetched = await ns.runner.run(process.execPath, [
      '-e',
      `fetch('http://${metrics}/configz').then(async (r) => process.stdout.write(r.status + ' ' + r.headers.get('content-type') + '\\n' + await r.text()))`,
    ]);
    const [statusLine = '', body = ''] = fetched.stdout.split('\n');
    expect(statusLine).toBe('200 application/json');
    const configz = JSON.parse(body) as Record<string, Record<string, Record<string, unknown>>>;
    expect(configz['kubeproxy.config.k8s.io']).toMatchObject({
      Linux: { Conntrack: { MaxPerCore: 0, TCPEstablishedTimeout: '24h0m0s' }, OOMScoreAdj: -999 },
      HostnameOverride: 'node-1',
      MetricsBindAddress: '127.0.0.1:0',
      DetectLocal: { ClusterCIDRs: ['10.244.0.0/16'] },
    });

    expect(await terminate(run)).toEqual({ code: 0, signal: null });
  });

  it('writes a configured oomScoreAdj to its own /proc/<pid>/oom_score_adj', async () => {
    scratch = await createScratchNetns();
    // A raise needs no privilege, so this holds wherever the tests run.
    const run = await startRunIn(scratch, 'sb-run-oom-', NO_SERVERS, [
      'hostnameOverride: node-1',
      'oomScoreAdj: 500',
      'conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}',
    ]);
    expect((await readFile(`/proc/${run.child.pid}/oom_score_adj`, 'utf8')).trim()).toBe('500');
    expect(run.stderr()).toContain('"msg":"set oom_score_adj"');
    // Timeouts at 0 are left alone: still the new namespace's kernel defaults.
    expect(await readIn(scratch, ESTABLISHED)).toBe('432000');
    expect(await terminate(run)).toEqual({ code: 0, signal: null });
  });
});
