/**
 * `switchboard run --kubeconfig` end to end: the real CLI, the real client-node, the API
 * double. The example cluster served by the API must give exactly the example's golden
 * rules; a node topology label change forces a full sync, an endpoint change a partial one.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { serviceChains } from '../../src/backends/iptables/chain-names.js';
import { parseYamlDocuments } from '../../src/config/yaml.js';
import { blocks, listeningAddress, ROOT, type Run, startCli, syncedLogs, waitFor } from '../support/cli.js';
import { FakeApiServer, type KubeObject } from './fake-apiserver.js';

const EXAMPLE = join(ROOT, 'fixtures/example');
const RESOURCE = { Service: 'services', EndpointSlice: 'endpointslices', Node: 'nodes' } as const;

let running: Run | null = null;
let api: FakeApiServer | null = null;
let dir: string | null = null;
afterEach(async () => {
  if (running && running.child.exitCode === null) running.child.kill('SIGKILL');
  running = null;
  await api?.close();
  api = null;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = null;
});

it('syncs the cluster from the API server, follows node and endpoint changes, and stops on SIGTERM', async () => {
  api = await FakeApiServer.start();
  const objects = parseYamlDocuments(
    await readFile(join(EXAMPLE, 'cluster.yaml'), 'utf8'),
    'cluster.yaml',
  ) as (KubeObject & {
    kind: keyof typeof RESOURCE;
  })[];
  for (const o of objects) api.apply(RESOURCE[o.kind], o);
  dir = await mkdtemp(join(tmpdir(), 'sb-run-api-'));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, api.kubeConfigYaml());

  running = startCli([
    'run',
    '--dry-run',
    '--kubeconfig',
    kubeconfig,
    '--config',
    join(EXAMPLE, 'config.yaml'),
    '--family',
    'ipv4',
    '--healthz-bind-address',
    '127.0.0.1:0',
    '--metrics-bind-address',
    '127.0.0.1:0',
  ]);
  const run = running;
  await waitFor(() => syncedLogs(run.stderr()).length === 1, 'the first sync');
  const golden = await readFile(join(EXAMPLE, 'iptables.rules'), 'utf8');
  expect(blocks(run.stdout()).get('# sync 1 full IPv4')).toBe(golden);

  // The node moves to another zone: topology labels changed, so the next sync is full.
  const node = objects.find((o) => o.kind === 'Node')!;
  api.apply('nodes', {
    ...node,
    metadata: {
      ...node.metadata,
      labels: { ...node.metadata.labels, 'topology.kubernetes.io/zone': 'zone-b' },
    },
  });
  await waitFor(() => blocks(run.stdout()).has('# sync 2 full IPv4'), 'a full sync after the label change');

  // One endpoint of shop/web becomes not ready: a partial sync of that service only.
  const webSlice = objects.find((o) => o.kind === 'EndpointSlice' && o.metadata.name.startsWith('web-'))!;
  const endpoints = (webSlice as unknown as { endpoints: { conditions: Record<string, boolean> }[] })
    .endpoints;
  const changed = {
    ...webSlice,
    endpoints: endpoints.map((e, i) =>
      i === 0 ? { ...e, conditions: { ...e.conditions, ready: false } } : e,
    ),
  };
  api.apply('endpointslices', changed);
  await waitFor(
    () => blocks(run.stdout()).has('# sync 3 partial IPv4'),
    'a partial sync after the endpoint change',
  );
  const partial = blocks(run.stdout()).get('# sync 3 partial IPv4')!;
  expect([...partial.matchAll(/^:(KUBE-SVC-\S+) /gm)].map((m) => m[1])).toEqual([
    serviceChains('shop/web:http', 'TCP').svc,
  ]);

  const healthz = await fetch(`http://${listeningAddress(run.stderr(), 'healthz')}/healthz`);
  expect(healthz.status).toBe(200);

  run.child.kill('SIGTERM');
  expect(await run.exit).toEqual({ code: 0, signal: null });
});
