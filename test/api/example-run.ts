/**
 * The example cluster (fixtures/example/cluster.yaml) served by the API double, and
 * `switchboard run --dry-run` watching it: where the CLI tests of the API source start.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseYamlDocuments } from '../../src/config/yaml.js';
import { LOOPBACK_SERVERS, ROOT, type Run, startSynced } from '../support/cli.js';
import { FakeApiServer, type KubeObject } from './fake-apiserver.js';

export const EXAMPLE = join(ROOT, 'fixtures/example');
const RESOURCE = { Service: 'services', EndpointSlice: 'endpointslices', Node: 'nodes' } as const;

export type ExampleObject = KubeObject & { kind: keyof typeof RESOURCE };

/** A fresh API double serving the example cluster's objects. */
export async function serveExampleCluster(): Promise<{ api: FakeApiServer; objects: ExampleObject[] }> {
  const api = await FakeApiServer.start();
  const objects = parseYamlDocuments(
    await readFile(join(EXAMPLE, 'cluster.yaml'), 'utf8'),
    'cluster.yaml',
  ) as ExampleObject[];
  for (const o of objects) api.apply(RESOURCE[o.kind], o);
  return { api, objects };
}

/**
 * `switchboard run --dry-run` (IPv4, the example's configuration, healthz and metrics on
 * loopback) against `api`, through a kubeconfig written into `dir`; resolves after its
 * first sync.
 */
export async function startDryRunAgainst(api: FakeApiServer, dir: string): Promise<Run> {
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, api.kubeConfigYaml());
  return startSynced([
    'run',
    '--dry-run',
    '--kubeconfig',
    kubeconfig,
    '--config',
    join(EXAMPLE, 'config.yaml'),
    '--family',
    'ipv4',
    ...LOOPBACK_SERVERS,
  ]);
}
