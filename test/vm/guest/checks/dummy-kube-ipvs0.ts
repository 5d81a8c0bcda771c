/** kube-proxy's dummy interface: created down, addresses bound to it; no stray dummy0. */
import assert from 'node:assert/strict';
import type { CheckContext } from '../check.js';

export default async function (t: CheckContext): Promise<void> {
  // numdummies=0: loading the dummy module created no dummy0 in the guest's root namespace.
  const root = await t.sh.run('ip', ['-o', 'link', 'show', 'type', 'dummy']);
  assert.equal(root.stdout.trim(), '', `unexpected dummy links: ${root.stdout}`);

  const { runner } = await t.scratchNetns();
  await runner.run('ip', ['link', 'add', 'kube-ipvs0', 'type', 'dummy']);
  await runner.run('ip', ['addr', 'add', '10.96.0.10/32', 'dev', 'kube-ipvs0']);
  await runner.run('ip', ['addr', 'add', 'fd00:10:96::a/128', 'dev', 'kube-ipvs0']);
  const link = (await runner.run('ip', ['-d', '-o', 'link', 'show', 'kube-ipvs0'])).stdout;
  assert.match(link, /\bdummy\b/, link);
  assert.match(link, /state DOWN/, `kube-ipvs0 must stay down: ${link}`);
  const addrs = (await runner.run('ip', ['-o', 'addr', 'show', 'dev', 'kube-ipvs0'])).stdout;
  assert.match(addrs, /inet 10\.96\.0\.10\/32 /, addrs);
  assert.match(addrs, /inet6 fd00:10:96::a\/128 /, addrs);
  // The VIP is local to the namespace although the link is down (what makes IPVS accept it).
  const route = (await runner.run('ip', ['route', 'get', '10.96.0.10'])).stdout;
  assert.match(route, /^local 10\.96\.0\.10 /, route);
  t.note(addrs.trim());
}
