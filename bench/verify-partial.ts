/**
 * Checks that a partial render after one endpoint change writes what spec §17 says and
 * nothing more: the fixed nat chains, the changed service's chains, and the stale SEP
 * chain of the replaced endpoint (declared, so flushed, and `-X`ed). Reads the restore
 * text itself, not only the renderer's data, so it checks what iptables-restore would get.
 */
import { endpointChain, serviceChains } from '../src/backends/iptables/chain-names.js';
import type { IptablesRender } from '../src/backends/iptables/render.js';
import type { Snapshot } from '../src/model/types.js';

export const FIXED_NAT_CHAINS = ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'];

export interface ChangedEndpoint {
  serviceKey: string;
  removedIP: string;
  addedIP: string;
}

interface NatSection {
  declared: Set<string>;
  deleted: string[];
  /** chains that `-A` lines append to */
  appended: Set<string>;
}

function natSection(text: string): NatSection {
  const section: NatSection = { declared: new Set(), deleted: [], appended: new Set() };
  const start = text.indexOf('*nat\n');
  if (start < 0) return section;
  for (const line of text.slice(start).split('\n')) {
    if (line === 'COMMIT') break;
    if (line.startsWith(':')) section.declared.add(line.slice(1, line.indexOf(' ')));
    else if (line.startsWith('-X ')) section.deleted.push(line.slice(3));
    else if (line.startsWith('-A ')) section.appended.add(line.slice(3, line.indexOf(' ', 3)));
  }
  return section;
}

const sorted = (s: Iterable<string>) => [...s].sort();
const minus = (a: Iterable<string>, b: ReadonlySet<string>) => sorted([...a].filter((x) => !b.has(x)));

/** Returns one message per violation; empty when the partial render is exactly right. */
export function checkPartialRender(
  render: IptablesRender,
  snapshot: Snapshot,
  change: ChangedEndpoint,
): string[] {
  const failures: string[] = [];
  const fail = (msg: string) => failures.push(`${change.serviceKey}: ${msg}`);
  const ports = snapshot.servicePorts.filter((sp) => sp.port.serviceKey === change.serviceKey);
  if (ports.length === 0) return [`${change.serviceKey}: not in the snapshot`];

  const ownChains = new Set<string>();
  const stale = new Set<string>();
  const added = new Set<string>();
  for (const { port, endpoints } of ports) {
    const N = port.nameString;
    for (const c of Object.values(serviceChains(N, port.protocol))) ownChains.add(c);
    for (const ep of endpoints) ownChains.add(endpointChain(N, port.protocol, ep.endpoint));
    const replacement = endpoints.find((ep) => ep.ip === change.addedIP);
    if (!replacement) {
      fail(`port ${N}/${port.protocol} has no endpoint ${change.addedIP}`);
      continue;
    }
    added.add(endpointChain(N, port.protocol, replacement.endpoint));
    stale.add(endpointChain(N, port.protocol, `${change.removedIP}:${replacement.port}`));
  }

  const expected = new Set(FIXED_NAT_CHAINS);
  for (const c of ownChains) if (render.activeChains.has(c)) expected.add(c);
  for (const c of stale) expected.add(c);

  const nat = natSection(render.text);
  const missing = minus(expected, nat.declared);
  const unexpected = minus(nat.declared, expected);
  if (missing.length > 0) fail(`nat declarations lack ${missing.join(' ')}`);
  if (unexpected.length > 0) {
    const shown = unexpected.slice(0, 5).join(' ');
    fail(
      `nat declares ${unexpected.length} chains it should not: ${shown}${unexpected.length > 5 ? ' ...' : ''}`,
    );
  }
  for (const c of added) if (!nat.declared.has(c)) fail(`new endpoint chain ${c} is not written`);
  for (const c of stale) if (render.activeChains.has(c)) fail(`stale chain ${c} is still active`);
  if (sorted(nat.deleted).join() !== sorted(stale).join()) {
    fail(`-X lines are [${nat.deleted.join(' ')}], expected [${sorted(stale).join(' ')}]`);
  }
  const undeclared = minus(nat.appended, nat.declared);
  if (undeclared.length > 0) fail(`rules appended to undeclared chains: ${undeclared.slice(0, 5).join(' ')}`);
  return failures;
}
