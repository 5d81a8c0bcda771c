/**
 * `switchboard run --kubeconfig` end to end: the real CLI, the real client-node, the API
 * double. The example cluster served by the API must give exactly the example's golden
 * rules; a node topology label change forces a full sync, an endpoint change a partial one.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { serviceChains } from '../../src/backends/iptables/chain-names.js';
import { blocks, listeningAddress, terminate, waitFor } from '../support/cli.js';
import { EXAMPLE, exampleApiPerTest, startDryRunAgainst } from './example-run.js';

const serveExample = exampleApiPerTest('sb-run-api-');

it('syncs the cluster from the API server, follows node and endpoint changes, and stops on SIGTERM', async () => {
  const { api, objects, dir } = await serveExample();
  const run = await startDryRunAgainst(api, dir);
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

  expect(await terminate(run)).toEqual({ code: 0, signal: null });
});
