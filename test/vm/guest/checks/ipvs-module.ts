/** ip_vs and every scheduler kube-proxy accepts are loaded, and ipvsadm drives them. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { IPVS_SCHEDULERS } from '../../../../src/backends/ipvs/state.js';
import type { CheckContext } from '../check.js';

export default async function (t: CheckContext): Promise<void> {
  const loaded = new Set(
    readFileSync('/proc/modules', 'utf8')
      .split('\n')
      .map((l) => l.split(' ', 1)[0]),
  );
  const missing = ['ip_vs', 'xt_ipvs', ...IPVS_SCHEDULERS.map((s) => `ip_vs_${s}`)].filter(
    (m) => !loaded.has(m),
  );
  assert.deepEqual(missing, [], `modules not loaded: ${missing.join(' ')}`);

  const { runner } = await t.scratchNetns();
  const empty = await runner.run('ipvsadm', ['-Ln']);
  assert.match(empty.stdout, /^IP Virtual Server version \d/m);
  assert.doesNotMatch(empty.stdout, /^(TCP|UDP|SCTP) /m, 'a fresh namespace has an empty IPVS table');
  t.note(empty.stdout.split('\n')[0]!);

  // One virtual server per scheduler, in one `ipvsadm -R` batch, read back with -Sn.
  const lines = IPVS_SCHEDULERS.map((s, i) => `-A -t 10.96.0.${i + 1}:80 -s ${s}`);
  const restore = await runner.run('ipvsadm', ['-R'], { input: `${lines.join('\n')}\n` });
  assert.equal(restore.stderr, '', `ipvsadm -R complained: ${restore.stderr}`);
  const saved = (await runner.run('ipvsadm', ['-Sn'])).stdout;
  for (const [i, s] of IPVS_SCHEDULERS.entries()) {
    assert.match(
      saved,
      new RegExp(`^-A -t 10\\.96\\.0\\.${i + 1}:80 -s ${s}\\b`, 'm'),
      `scheduler ${s}:\n${saved}`,
    );
  }
  t.note(`virtual servers with schedulers ${IPVS_SCHEDULERS.join(', ')} created and read back`);
}
