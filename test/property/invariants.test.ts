/**
 * The invariant checkers must fail on broken renders, or the property tests prove nothing.
 * Each case breaks a known-good render in one way.
 */
import { describe, expect, it } from 'vitest';
import { buildRenderContext } from '../../src/backends/iptables/context.js';
import { renderIptables } from '../../src/backends/iptables/render.js';
import { nodeInfoFrom, SnapshotBuilder } from '../../src/model/snapshot.js';
import { ObjectStore } from '../../src/model/store.js';
import { iptablesOptions } from '../unit/builders.js';
import { add, ep, nodeObject, serviceObject, sliceObject } from '../unit/objects.js';
import {
  checkCommentsAndOrder,
  checkEqualShares,
  checkFullRender,
  checkNormalForm,
  checkServiceChainsReferenced,
  checkTargetsDeclared,
  readText,
} from './invariants.js';

function goodText(): string {
  const store = new ObjectStore('node-1');
  store.apply(add(nodeObject()));
  store.apply(
    add(
      serviceObject('svc1', {
        spec: {
          sessionAffinity: 'ClientIP',
          type: 'NodePort',
          ports: [{ name: 'p80', port: 80, nodePort: 30080 }],
        },
      }),
    ),
  );
  store.apply(
    add(sliceObject('svc1-a', [ep('10.0.0.1'), ep('10.0.0.2'), ep('10.0.0.3', { nodeName: 'node-1' })])),
  );
  const node = nodeInfoFrom('node-1', store.node);
  const snapshot = new SnapshotBuilder('IPv4', { preferSameNode: true }).build(store, node);
  const render = renderIptables(
    snapshot,
    buildRenderContext(iptablesOptions({ clusterCIDR: '10.244.0.0/16' }), 'IPv4', node),
  );
  checkFullRender(render);
  return render.text;
}

const text = goodText();
const lines = text.split('\n');
const edit = (fn: (l: string[]) => string[]) => fn([...lines]).join('\n');

describe('the invariant checkers catch broken renders', () => {
  it('a jump to an undeclared chain', () => {
    const broken = edit((l) => l.filter((x) => !x.startsWith(':KUBE-SVC-')));
    expect(() => checkTargetsDeclared(readText(broken))).toThrow(/undeclared/);
  });

  it('a declared SEP chain nothing jumps to', () => {
    const sep = lines.find((l) => l.startsWith(':KUBE-SEP-'))!;
    const nat = lines.indexOf('*nat') + 1;
    const orphan = sep.replace(/KUBE-SEP-\w+/, 'KUBE-SEP-AAAAAAAAAAAAAAAA');
    const broken = edit((l) => [...l.slice(0, nat), orphan, ...l.slice(nat)]);
    expect(() => checkServiceChainsReferenced(readText(broken))).toThrow(/nothing jumps/);
  });

  it('unequal shares', () => {
    const broken = text.replace('--probability 0.3333333333', '--probability 0.3000000000');
    expect(broken).not.toBe(text);
    expect(() => checkEqualShares(readText(broken))).toThrow(/share/);
  });

  it('an affinity pass that misses an endpoint', () => {
    const broken = edit((l) =>
      l.filter((x, i) => !(x.includes('--rcheck') && i === l.findIndex((y) => y.includes('--rcheck')))),
    );
    expect(() => checkEqualShares(readText(broken))).toThrow(/affinity/);
  });

  it('a comment with an inner quote, a stray quote, an injected line', () => {
    expect(() => readText(text.replace('"ns1/svc1:p80 cluster IP"', '"ns1/svc1:p80 "cluster" IP"'))).toThrow(
      /comment|quote/,
    );
    expect(() => readText(text.replace('-j KUBE-MARK-MASQ', '-j "KUBE-MARK-MASQ"'))).toThrow(/quote/);
    expect(() =>
      readText(text.replace('-j KUBE-MARK-MASQ', '-j KUBE-MARK-MASQ\n-I INPUT -j ACCEPT')),
    ).toThrow(/unexpected line/);
    expect(() => readText(text.replace('COMMIT\n*nat', 'COMMIT\n*raw\nCOMMIT\n*nat'))).toThrow(
      /unexpected table/,
    );
  });

  it('comments in the wrong mode for the cluster size', () => {
    expect(() => checkCommentsAndOrder(readText(text), true)).toThrow(/comment \(large=true\)/);
    const noComment = text.replace(/ -m comment --comment ns1\/svc1:p80 -s/g, ' -s');
    expect(() => checkCommentsAndOrder(readText(noComment), false)).toThrow(/comment \(large=false\)/);
  });

  it('a rule after the KUBE-NODEPORTS jump', () => {
    const jump = lines.find((l) => l.includes('must be the last rule'))!;
    const broken = edit((l) => {
      const i = l.indexOf(jump);
      return [
        ...l.slice(0, i + 1),
        '-A KUBE-SERVICES -m comment --comment "x/y cluster IP" -j KUBE-MARK-MASQ',
        ...l.slice(i + 1),
      ];
    });
    expect(() => checkCommentsAndOrder(readText(broken), false)).toThrow(/last/);
  });

  it('a text out of normal form', () => {
    const broken = edit((l) => {
      const i = l.indexOf(':KUBE-NODEPORTS - [0:0]');
      [l[i], l[i + 1]] = [l[i + 1]!, l[i]!];
      return l;
    });
    expect(() => checkNormalForm(broken)).toThrow(/normal form/);
  });
});
