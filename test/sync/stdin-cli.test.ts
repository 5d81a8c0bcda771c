/**
 * `kubectl get svc,endpointslices,nodes -A -o json | switchboard render --from -` through the
 * real command line: the example cluster as kubectl's JSON List on standard input renders
 * exactly the example's golden rules; `run --once` reads standard input too; `run` without
 * --once refuses it, since standard input cannot be re-read to follow changes.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, expect, it } from 'vitest';
import { parseYamlDocuments } from '../../src/config/yaml.js';
import { blocks, ROOT } from '../support/cli.js';

const EXAMPLE = join(ROOT, 'fixtures/example');
let kubectlJson = '';

beforeAll(async () => {
  const items = parseYamlDocuments(await readFile(join(EXAMPLE, 'cluster.yaml'), 'utf8'), 'cluster.yaml');
  kubectlJson = `${JSON.stringify({ apiVersion: 'v1', items, kind: 'List', metadata: { resourceVersion: '' } }, null, 4)}\n`;
});

function cli(args: string[], input: string) {
  return execa(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
    cwd: ROOT,
    input,
    reject: false,
    timeout: 60_000,
  });
}

const config = ['--config', join(EXAMPLE, 'config.yaml')];

it('render --from - reads kubectl JSON from standard input', async () => {
  const r = await cli(['render', '--from', '-', ...config], kubectlJson);
  expect(r.exitCode, String(r.stderr)).toBe(0);
  expect(r.stdout).toBe((await readFile(join(EXAMPLE, 'iptables.rules'), 'utf8')).replace(/\n$/, ''));
}, 60_000);

it('run --once --from - syncs what standard input holds; run without --once refuses it', async () => {
  const [once, follow] = await Promise.all([
    cli(['run', '--once', '--dry-run', '--family', 'ipv4', '--from', '-', ...config], kubectlJson),
    cli(['run', '--dry-run', '--from', '-', ...config], kubectlJson),
  ]);
  expect(once.exitCode, String(once.stderr)).toBe(0);
  const golden = await readFile(join(EXAMPLE, 'iptables.rules'), 'utf8');
  expect(blocks(`${once.stdout}\n`).get('# sync 1 full IPv4')).toBe(golden);
  expect(follow.exitCode).toBe(2);
  expect(follow.stderr).toMatch(
    /switchboard: --from -: standard input can be read only once, so its changes cannot be followed; use run --once, or a file/,
  );
}, 60_000);
