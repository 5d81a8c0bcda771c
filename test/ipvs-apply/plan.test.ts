/**
 * The IPVS planner: its decisions one by one, and a property: after any sequence of random
 * desired states applied through planner + the in-memory kernel, the kernel holds exactly
 * the last desired state, foreign virtual servers inside excludeCIDRs survive untouched,
 * those outside are removed, the other family and firewall-mark services are never touched,
 * and the kernel never refuses a line.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type IpvsTools,
  type KernelIpvsState,
  readKernelState,
} from '../../src/backends/ipvs/kernel-state.js';
import {
  applyPlan,
  DesiredStateError,
  drainKey,
  isEmptyPlan as isEmpty,
  KernelConflictError,
  newPlanMemo,
  type PlanInput,
  planSync,
  SWAP_MIN_CHANGES,
} from '../../src/backends/ipvs/plan.js';
import {
  compareAddresses,
  compareVirtualServers,
  type IpvsState,
  type VirtualServer,
} from '../../src/backends/ipvs/state.js';
import { FakeNode } from '../../src/kernel/fakes/node.js';
import { IpLink, KUBE_IPVS0 } from '../../src/kernel/ip-link.js';
import { Ipset } from '../../src/kernel/ipset.js';
import { Ipvsadm } from '../../src/kernel/ipvsadm.js';
import { type IPFamily, type ParsedCIDR, parseCIDR } from '../../src/model/ip.js';
import { ipvsState, rs, vs } from './builders.js';

function emptyKernel(family: IPFamily = 'IPv4'): KernelIpvsState {
  return { family, virtualServers: new Map(), ipsets: new Map(), boundAddresses: new Set() };
}

function input(desired: IpvsState, actual: KernelIpvsState, extra: Partial<PlanInput> = {}): PlanInput {
  return { desired, actual, excludeCIDRs: [], draining: new Set(), ...extra };
}

function toolsOf(node: FakeNode): IpvsTools {
  return { ipvsadm: new Ipvsadm(node), ipset: new Ipset(node), link: new IpLink(node) };
}

/** Runs a plan's batches as the backend does (minus verification). */
async function execute(tools: IpvsTools, plan: ReturnType<typeof planSync>): Promise<void> {
  if (plan.ipset.length > 0) await tools.ipset.restore(`${plan.ipset.join('\n')}\n`);
  if (plan.ipvsadm.length > 0) await tools.ipvsadm.restore(`${plan.ipvsadm.join('\n')}\n`);
  if (plan.createLink) await tools.link.addDummy(KUBE_IPVS0);
  await tools.link.batch(plan.addresses);
}

describe('planSync decisions', () => {
  it('creates everything on an empty node: sets first, then services, then addresses', () => {
    const desired = ipvsState('IPv4', {
      virtualServers: [
        vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5')]),
        vs('UDP', '10.96.0.10', 53, [], { persistenceSeconds: 10800 }),
      ],
      sets: { clusterIP: ['10.96.0.10,tcp:80', '10.96.0.10,udp:53'] },
      boundAddresses: ['10.96.0.10'],
    });
    const plan = planSync(input(desired, { ...emptyKernel(), boundAddresses: null }));
    expect(plan.ipvsadm).toEqual([
      '-A -t 10.96.0.10:80 -s rr',
      '-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1',
      '-A -u 10.96.0.10:53 -s rr -p 10800',
    ]);
    expect(plan.ipset.filter((l) => l.startsWith('create'))).toHaveLength(17);
    expect(plan.ipset).toContain('create KUBE-NODE-PORT-TCP bitmap:port range 0-65535');
    expect(plan.ipset).toContain('add KUBE-CLUSTER-IP 10.96.0.10,udp:53');
    expect(plan.createLink).toBe(true);
    expect(plan.addresses).toEqual(['addr add 10.96.0.10/32 dev kube-ipvs0']);
    expect(plan.rebuiltSets).toHaveLength(17);
  });

  it('edits in place: -E for a changed service, -e (never -a) for an existing real server', () => {
    const actual = emptyKernel();
    actual.virtualServers.set('TCP 10.96.0.10:80', {
      ...vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5', 8080, 3), rs('10.244.1.6')]),
      realServers: [
        { ...rs('10.244.1.5', 8080, 3), extras: [] },
        { ...rs('10.244.1.6'), extras: [] },
      ],
      extras: [],
    });
    const desired = ipvsState('IPv4', {
      virtualServers: [
        vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5'), rs('10.244.1.6')], {
          scheduler: 'mh',
          flags: ['mh-port'],
        }),
      ],
    });
    const plan = planSync(input(desired, actual));
    expect(plan.ipvsadm).toEqual([
      '-E -t 10.96.0.10:80 -s mh -b mh-port',
      '-e -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1',
    ]);
  });

  it('rewrites a service or real server that carries settings Switchboard never writes', () => {
    const actual = emptyKernel();
    actual.virtualServers.set('TCP 10.96.0.10:80', {
      ...vs('TCP', '10.96.0.10', 80),
      realServers: [{ ...rs('10.244.1.5'), extras: ['--tun-type gue'] }],
      extras: ['-M 255.255.255.0'],
    });
    const plan = planSync(
      input(ipvsState('IPv4', { virtualServers: [vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5')])] }), actual),
    );
    expect(plan.ipvsadm).toEqual([
      '-E -t 10.96.0.10:80 -s rr',
      '-e -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1',
    ]);
  });

  it('drains a TCP real server that left (weight 0), deletes UDP/SCTP ones at once', () => {
    const actual = emptyKernel();
    for (const protocol of ['TCP', 'UDP', 'SCTP'] as const) {
      const v = vs(protocol, '10.96.0.10', 80, [rs('10.244.1.5'), rs('10.244.1.6')]);
      actual.virtualServers.set(`${protocol} 10.96.0.10:80`, {
        ...v,
        realServers: v.realServers.map((r) => ({ ...r, extras: [] })),
        extras: [],
      });
    }
    const desired = ipvsState('IPv4', {
      virtualServers: (['TCP', 'UDP', 'SCTP'] as const).map((p) =>
        vs(p, '10.96.0.10', 80, [rs('10.244.1.5')]),
      ),
    });
    const plan = planSync(input(desired, actual));
    expect(plan.ipvsadm).toEqual([
      '-d --sctp-service 10.96.0.10:80 -r 10.244.1.6:8080',
      '-e -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 0',
      '-d -u 10.96.0.10:80 -r 10.244.1.6:8080',
    ]);
    expect(plan.drainsStarted.map((d) => d.key)).toEqual(['TCP 10.96.0.10:80/10.244.1.6:8080']);
    expect(plan.virtualServers.get('TCP 10.96.0.10:80')?.realServers.map((r) => r.weight)).toEqual([1, 0]);
  });

  it('leaves a draining real server to graceful termination, and gives it weight 1 back if it returns', () => {
    const actual = emptyKernel();
    const v = vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5'), rs('10.244.1.6', 8080, 0)]);
    actual.virtualServers.set('TCP 10.96.0.10:80', {
      ...v,
      realServers: v.realServers.map((r) => ({ ...r, extras: [] })),
      extras: [],
    });
    const draining = new Set([drainKey(v, rs('10.244.1.6'))]);
    const stay = planSync(
      input(
        ipvsState('IPv4', { virtualServers: [vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5')])] }),
        actual,
        { draining },
      ),
    );
    expect(stay.ipvsadm).toEqual([]);
    expect(stay.drainsStarted).toEqual([]);
    const back = planSync(
      input(
        ipvsState('IPv4', {
          virtualServers: [vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5'), rs('10.244.1.6')])],
        }),
        actual,
        { draining },
      ),
    );
    expect(back.ipvsadm).toEqual(['-e -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 1']);
    expect(back.drainsEnded).toEqual(['TCP 10.96.0.10:80/10.244.1.6:8080']);
  });

  it('after a restart: a weight-0 leftover still wanted gets weight 1, one not wanted is drained without a write', () => {
    const actual = emptyKernel();
    const v = vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5', 8080, 0), rs('10.244.1.6', 8080, 0)]);
    actual.virtualServers.set('TCP 10.96.0.10:80', {
      ...v,
      realServers: v.realServers.map((r) => ({ ...r, extras: [] })),
      extras: [],
    });
    const plan = planSync(
      input(ipvsState('IPv4', { virtualServers: [vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5')])] }), actual),
    );
    expect(plan.ipvsadm).toEqual(['-e -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1']);
    expect(plan.drainsStarted.map((d) => d.key)).toEqual(['TCP 10.96.0.10:80/10.244.1.6:8080']);
  });

  it('deletes stale services of its family except inside excludeCIDRs', () => {
    const actual = emptyKernel();
    for (const address of ['10.96.0.99', '192.168.100.1']) {
      actual.virtualServers.set(`TCP ${address}:80`, {
        ...vs('TCP', address, 80),
        realServers: [],
        extras: [],
      });
    }
    const plan = planSync(
      input(ipvsState('IPv4'), actual, { excludeCIDRs: [parseCIDR('192.168.100.0/24')!] }),
    );
    expect(plan.ipvsadm).toEqual(['-D -t 10.96.0.99:80']);
    expect(plan.excluded).toEqual(['TCP 192.168.100.1:80']);
  });

  it('swaps a large change in through a temporary set; keeps small changes incremental', () => {
    const entries = Array.from({ length: SWAP_MIN_CHANGES }, (_, i) => `10.96.${i >> 8}.${i & 255},tcp:80`);
    const actual = emptyKernel();
    for (const d of ipvsState('IPv4').ipsets) {
      actual.ipsets.set(d.name, { name: d.name, type: d.type, family: d.family, entries: new Set() });
    }
    const big = planSync(input(ipvsState('IPv4', { sets: { clusterIP: entries } }), actual));
    expect(big.ipset[0]).toBe('create SB-SWAP-4-1 hash:ip,port family inet hashsize 1024 maxelem 65536');
    expect(big.ipset.slice(-2)).toEqual(['swap SB-SWAP-4-1 KUBE-CLUSTER-IP', 'destroy SB-SWAP-4-1']);
    expect(big.rebuiltSets).toEqual(['KUBE-CLUSTER-IP']);
    const small = planSync(input(ipvsState('IPv4', { sets: { clusterIP: entries.slice(0, 3) } }), actual));
    expect(small.ipset).toEqual(
      entries
        .slice(0, 3)
        .sort()
        .map((e) => `add KUBE-CLUSTER-IP ${e}`),
    );
    // a leftover swap set from a crash is destroyed first
    actual.ipsets.set('SB-SWAP-4-1', {
      name: 'SB-SWAP-4-1',
      type: 'hash:ip,port',
      family: 'inet',
      entries: new Set(),
    });
    expect(planSync(input(ipvsState('IPv4'), actual)).ipset).toEqual(['destroy SB-SWAP-4-1']);
  });

  it('refuses a set of ours that another agent made with another type, naming it', () => {
    const actual = emptyKernel();
    actual.ipsets.set('KUBE-CLUSTER-IP', {
      name: 'KUBE-CLUSTER-IP',
      type: 'hash:ip',
      family: 'inet',
      entries: new Set(),
    });
    expect(() => planSync(input(ipvsState('IPv4'), actual))).toThrow(KernelConflictError);
    expect(() => planSync(input(ipvsState('IPv4'), actual))).toThrow(/KUBE-CLUSTER-IP exists as hash:ip/);
  });

  it('a render whose set entries and addresses are new arrays of the same strings plans nothing and parses nothing again', () => {
    const desired = ipvsState('IPv4', {
      virtualServers: [vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5')])],
      sets: { clusterIP: ['10.96.0.10,tcp:80'], ipvsIPs: ['10.96.0.10'] },
      boundAddresses: ['10.96.0.10'],
    });
    const memo = newPlanMemo();
    const actual = emptyKernel();
    applyPlan(actual, planSync({ desired, actual, excludeCIDRs: [], draining: new Set(), memo }));
    const setsBefore = new Map(actual.ipsets);
    // every array a new object, as the renderer hands them out; the virtual servers the same
    const again: IpvsState = {
      ...desired,
      ipsets: desired.ipsets.map((set) => ({ ...set, entries: [...set.entries] })),
      boundAddresses: [...desired.boundAddresses],
    };
    const plan = planSync({ desired: again, actual, excludeCIDRs: [], draining: new Set(), memo });
    expect(isEmpty(plan)).toBe(true);
    // nothing was canonicalised or compared again: the known sets are the very same objects
    expect(plan.ipsets.size).toBe(0);
    for (const [name, set] of actual.ipsets) expect(set).toBe(setsBefore.get(name));
    // a changed entry is still seen
    const changed: IpvsState = {
      ...again,
      ipsets: again.ipsets.map((set) =>
        set.name === 'KUBE-CLUSTER-IP' ? { ...set, entries: ['10.96.0.11,tcp:80'] } : set,
      ),
    };
    const next = planSync({ desired: changed, actual, excludeCIDRs: [], draining: new Set(), memo });
    expect(next.ipset).toEqual([
      'del KUBE-CLUSTER-IP 10.96.0.10,tcp:80',
      'add KUBE-CLUSTER-IP 10.96.0.11,tcp:80',
    ]);
  });

  it('validates the desired state, naming the object and field', () => {
    const bad = (v: VirtualServer) => () =>
      planSync(input(ipvsState('IPv4', { virtualServers: [v] }), emptyKernel()));
    expect(bad(vs('TCP', '10.96.0.10', 0))).toThrow(/virtual server TCP 10.96.0.10:0: port 0/);
    expect(bad(vs('TCP', 'fd00::1', 80))).toThrow(/not an IPv4 address/);
    expect(bad(vs('TCP', '10.96.0.10', 80, [], { scheduler: 'bogus' }))).toThrow(DesiredStateError);
    expect(bad(vs('TCP', '10.96.0.10', 80, [], { flags: ['mh-port'] }))).toThrow(
      /flag mh-port needs scheduler mh/,
    );
    expect(bad(vs('TCP', '10.96.0.10', 80, [rs('10.244.1.5', 8080, 70000)]))).toThrow(
      /real server 10.244.1.5:8080: weight/,
    );
    expect(() =>
      planSync(
        input(
          ipvsState('IPv4', { sets: { loadBalancerSourceCIDR: ['1.2.3.4,tcp:80,0.0.0.0/0'] } }),
          emptyKernel(),
        ),
      ),
    ).toThrow(/ipset KUBE-LOAD-BALANCER-SOURCE-CIDR: entry "1.2.3.4,tcp:80,0.0.0.0\/0"/);
  });
});

// ---------------------------------------------------------------------------------------------
// Property

const VIPS = ['10.96.0.1', '10.96.0.2', '10.96.0.3', '10.96.1.7'];
const PORTS = [80, 443];
const ENDPOINTS = ['10.244.0.1', '10.244.0.2', '10.244.1.9', '10.244.2.3'];
const EXCLUDED_FOREIGN = '192.168.100.1';
const REMOVED_FOREIGN = '192.168.200.1';

const realServersArb = fc
  .subarray(ENDPOINTS.flatMap((a) => [8080, 8081].map((p) => [a, p] as const)))
  .map((list) => list.map(([a, p]) => rs(a, p)));

const virtualServerArb = fc
  .record({
    protocol: fc.constantFrom('TCP' as const, 'UDP' as const, 'SCTP' as const),
    address: fc.constantFrom(...VIPS),
    port: fc.constantFrom(...PORTS),
    realServers: realServersArb,
    scheduler: fc.constantFrom('rr', 'wrr', 'mh'),
    mhPort: fc.boolean(),
    persistenceSeconds: fc.constantFrom(0, 60, 10800),
  })
  .map((r) =>
    vs(r.protocol, r.address, r.port, r.realServers, {
      scheduler: r.scheduler,
      persistenceSeconds: r.persistenceSeconds,
      flags: r.scheduler === 'mh' && r.mhPort ? ['mh-port'] : [],
    }),
  );

const desiredArb = fc
  .record({
    virtualServers: fc.uniqueArray(virtualServerArb, {
      selector: (v) => `${v.protocol} ${v.address}:${v.port}`,
      maxLength: 8,
    }),
    loopBack: fc.oneof(
      { weight: 3, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 * SWAP_MIN_CHANGES }) },
    ),
    nodePorts: fc.uniqueArray(fc.integer({ min: 30000, max: 30010 })),
    bound: fc.subarray(VIPS),
  })
  .map((r) =>
    ipvsState('IPv4', {
      virtualServers: r.virtualServers,
      sets: {
        clusterIP: r.virtualServers.map((v) => `${v.address},${v.protocol.toLowerCase()}:${v.port}`),
        loopBack: Array.from(
          { length: r.loopBack },
          (_, i) => `10.244.${i >> 8}.${i & 255},tcp:8080,10.244.${i >> 8}.${i & 255}`,
        ),
        nodePortTCP: r.nodePorts.map(String),
        ipvsIPs: r.bound,
      },
      boundAddresses: r.bound,
    }),
  );

/** The foreign things a node may hold besides Switchboard's. */
async function seedForeign(node: FakeNode): Promise<void> {
  await node.run('ipvsadm', ['-R'], {
    input: [
      `-A -t ${EXCLUDED_FOREIGN}:80 -s wlc -p 60 -M 255.255.255.0`,
      `-a -t ${EXCLUDED_FOREIGN}:80 -r 10.0.0.5:80 -g -w 3`,
      `-A -t ${REMOVED_FOREIGN}:80 -s rr`,
      `-a -t ${REMOVED_FOREIGN}:80 -r 10.0.0.6:80 -m -w 1`,
      '-A -t [fd00::10]:80 -s rr',
      '-a -t [fd00::10]:80 -r [fd00::20]:80 -m -w 1',
      '-A -f 100 -s rr',
      '',
    ].join('\n'),
  });
}

/** Deletes the real servers graceful termination would delete once their connections end. */
async function finishDrains(
  tools: IpvsTools,
  plan: ReturnType<typeof planSync>,
  state: KernelIpvsState,
): Promise<void> {
  if (plan.drainsStarted.length === 0) return;
  const lines = plan.drainsStarted.map(
    (d) =>
      `-d ${d.vs.protocol === 'TCP' ? '-t' : '-u'} ${d.vs.address}:${d.vs.port} -r ${d.rs.address}:${d.rs.port}`,
  );
  await tools.ipvsadm.restore(`${lines.join('\n')}\n`);
  for (const d of plan.drainsStarted) {
    const key = `${d.vs.protocol} ${d.vs.address}:${d.vs.port}`;
    const v = state.virtualServers.get(key)!;
    state.virtualServers.set(key, {
      ...v,
      realServers: v.realServers.filter((r) => `${r.address}:${r.port}` !== `${d.rs.address}:${d.rs.port}`),
    });
  }
}

function readBackAsDesired(
  state: KernelIpvsState,
  excluded: readonly ParsedCIDR[],
): Omit<IpvsState, 'iptables'> {
  const ipsets = [...state.ipsets.values()]
    .filter((s) => !s.name.startsWith('SB-SWAP-'))
    .map((s) => ({ name: s.name, type: s.type, family: s.family, entries: [...s.entries].sort() }))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const virtualServers = [...state.virtualServers.values()]
    .filter((v) => !excluded.some((c) => c.text === '192.168.100.0/24' && v.address === EXCLUDED_FOREIGN))
    .map(({ extras: _e, realServers, ...v }) => ({
      ...v,
      realServers: realServers.map(({ extras: _x, ...r }) => r),
    }))
    .sort(compareVirtualServers);
  return {
    family: state.family,
    ipsets,
    virtualServers,
    boundAddresses: [...(state.boundAddresses ?? [])].sort(compareAddresses),
  } as Omit<IpvsState, 'iptables'>;
}

describe('planSync + in-memory kernel (property)', () => {
  it('after any sequence of desired states, the kernel holds exactly the last one and nothing foreign it must keep is touched', async () => {
    const excludeCIDRs = [parseCIDR('192.168.100.0/24')!];
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(desiredArb, fc.boolean()), { minLength: 1, maxLength: 6 }),
        async (generated) => {
          // a later step may hand over the previous desired state object again (an unchanged render)
          const steps = generated.map(
            ([d, reread], i) => [i > 0 && i % 3 === 0 ? generated[i - 1]![0] : d, reread] as const,
          );
          const node = new FakeNode();
          const tools = toolsOf(node);
          await seedForeign(node);
          const foreignBefore = node.ipvsadm
            .save()
            .split('\n')
            .filter((l) => l.includes(EXCLUDED_FOREIGN) || l.includes('fd00::') || l.includes('-f 100'));
          let tracked: KernelIpvsState | null = null;
          // kept across steps, as the backend keeps it: unchanged objects are skipped
          const memo = newPlanMemo();
          for (const [desired, reread] of steps) {
            const actual: KernelIpvsState =
              reread || tracked === null ? await readKernelState(tools, 'IPv4', KUBE_IPVS0) : tracked;
            const plan = planSync(input(desired, actual, { excludeCIDRs, memo }));
            await execute(tools, plan); // throws on any stderr: every line must be valid
            applyPlan(actual, plan);
            await finishDrains(tools, plan, actual);
            tracked = actual;
            const back = await readKernelState(tools, 'IPv4', KUBE_IPVS0);
            const { iptables: _i, ...want } = desired;
            expect(readBackAsDesired(back, excludeCIDRs)).toEqual(want);
            expect(readBackAsDesired(tracked, excludeCIDRs)).toEqual(want);
            const saved = node.ipvsadm.save();
            expect(saved).not.toContain(REMOVED_FOREIGN);
            expect(
              saved
                .split('\n')
                .filter((l) => l.includes(EXCLUDED_FOREIGN) || l.includes('fd00::') || l.includes('-f 100')),
            ).toEqual(foreignBefore);
            expect(node.ipset.names().filter((n) => n.startsWith('SB-SWAP-'))).toEqual([]);
          }
          for (const call of node.calls) {
            expect(call.input ?? '').not.toMatch(/^-C|^flush/m);
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
