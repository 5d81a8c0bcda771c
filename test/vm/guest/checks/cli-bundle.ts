/**
 * The bundled switchboard CLI (t.cli) starts in the guest and renders the example cluster
 * exactly as on the host: what later checks use to run the real process under test.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { CheckContext } from '../check.js';

export default async function (t: CheckContext): Promise<void> {
  const example = join(t.repoRoot, 'fixtures', 'example');
  const started = performance.now();
  const { stdout } = await t.sh.run('node', [
    t.cli,
    'render',
    '--from',
    join(example, 'cluster.yaml'),
    '--config',
    join(example, 'config.yaml'),
  ]);
  const ms = Math.round(performance.now() - started);
  assert.match(stdout, /^\*nat$/m, stdout.slice(0, 500));
  assert.match(stdout, /^-A KUBE-SERVICES /m);
  t.note(`node ${t.cli} render: ${stdout.split('\n').length} lines in ${ms} ms`);
}
