/**
 * The example cluster (fixtures/example/cluster.yaml) served by the API double, and
 * `switchboard run --dry-run` watching it: where the CLI tests of the API source start.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { parseYamlDocuments } from '../../src/config/yaml.js';
import { killRuns, LOOPBACK_SERVERS, ROOT, type Run, startSynced } from '../support/cli.js';
import { FakeApiServer, type KubeObject } from './fake-apiserver.js';

export const EXAMPLE = join(ROOT, 'fixtures/example');
const RESOURCE = { Service: 'services', EndpointSlice: 'endpointslices', Node: 'nodes' } as const;

export type ExampleObject = KubeObject & { kind: keyof typeof RESOURCE };

export interface ExampleApi {
  /** a fresh API double serving the example cluster's objects */
  api: FakeApiServer;
  objects: ExampleObject[];
  /** a new working directory */
  dir: string;
}

/**
 * Call at the top of a test file: the returned function serves the example cluster and makes
 * a working directory; after each test, the runs still going are killed, the API double
 * closed and the directory removed.
 */
export function exampleApiPerTest(dirPrefix: string): () => Promise<ExampleApi> {
  let api: FakeApiServer | null = null;
  let dir: string | null = null;
  afterEach(async () => {
    await killRuns();
    await api?.close();
    api = null;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = null;
  });
  return async () => {
    const workDir = await mkdtemp(join(tmpdir(), dirPrefix));
    dir = workDir;
    const served = await FakeApiServer.start();
    api = served;
    const objects = parseYamlDocuments(
      await readFile(join(EXAMPLE, 'cluster.yaml'), 'utf8'),
      'cluster.yaml',
    ) as ExampleObject[];
    for (const o of objects) served.apply(RESOURCE[o.kind], o);
    return { api: served, objects, dir: workDir };
  };
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
