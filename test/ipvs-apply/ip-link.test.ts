/**
 * kube-ipvs0 through `ip`: the reader of `ip -o addr show`, the batch error reader, the
 * wrapper, and the in-memory `ip` checked against the real one in a scratch namespace
 * (with a bridge link: these hosts have no dummy links; the address behaviour is the
 * link type's business only for the flags column, which nothing reads).
 */
import { describe, expect, it } from 'vitest';
import { type CommandRunner, inputText } from '../../src/kernel/exec.js';
import { FakeIp } from '../../src/kernel/fakes/ip.js';
import { FakeNode } from '../../src/kernel/fakes/node.js';
import { parseIpAddrJson } from '../../src/kernel/host-probe.js';
import {
  addressCommand,
  IpBatchError,
  IpLink,
  parseIpAddrOneline,
  parseIpBatchErrors,
} from '../../src/kernel/ip-link.js';
import { withScratchNetns } from '../kernel/netns.js';
import { describeKernel } from '../kernel/require-root.js';
import { ipScripts, type ToolScript } from './tool-scripts.js';

// Measured with iproute2 6.1 (this project's hosts).
const ONELINE = `2: kube-ipvs0    inet 10.96.0.1/32 scope global kube-ipvs0\\       valid_lft forever preferred_lft forever
2: kube-ipvs0    inet 10.96.0.10/32 scope global kube-ipvs0\\       valid_lft forever preferred_lft forever
2: kube-ipvs0    inet6 fd00::10/128 scope global tentative \\       valid_lft forever preferred_lft forever
`;

describe('ip output', () => {
  it('reads ip -o addr show', () => {
    expect(parseIpAddrOneline(ONELINE).map((a) => [a.family, a.address, a.prefix])).toEqual([
      ['IPv4', '10.96.0.1', 32],
      ['IPv4', '10.96.0.10', 32],
      ['IPv6', 'fd00::10', 128],
    ]);
  });

  it('names the failing lines of ip -batch', () => {
    const input =
      'addr add 10.96.0.2/32 dev kube-ipvs0\naddr add 10.96.0.1/32 dev kube-ipvs0\naddr add 10.96.0.3/32 dev kube-ipvs0\n';
    expect(parseIpBatchErrors('Error: ipv4: Address already assigned.\nCommand failed -:2\n', input)).toEqual(
      [
        {
          lineNumber: 2,
          line: 'addr add 10.96.0.1/32 dev kube-ipvs0',
          message: 'Error: ipv4: Address already assigned.',
        },
      ],
    );
  });

  it('builds only canonical single-address commands', () => {
    expect(addressCommand('add', 'fd00::10', 'kube-ipvs0')).toBe('addr add fd00::10/128 dev kube-ipvs0');
    expect(() => addressCommand('add', '010.1.1.1', 'kube-ipvs0')).toThrow(/not a canonical IP/);
    expect(() => addressCommand('del', '10.1.1.1', 'kube ipvs0')).toThrow(/not a link name/);
  });
});

describe('IpLink on the in-memory ip', () => {
  it('creates the dummy link down, binds and unbinds in one batch, reports failures per line', async () => {
    const node = new FakeNode();
    const ip = new IpLink(node);
    expect(await ip.exists('kube-ipvs0')).toBe(false);
    expect(await ip.addresses('kube-ipvs0', 'IPv4')).toBeNull();
    await ip.addDummy('kube-ipvs0');
    await ip.batch([
      addressCommand('add', '10.96.0.1', 'kube-ipvs0'),
      addressCommand('add', 'fd00::10', 'kube-ipvs0'),
    ]);
    expect(await ip.addresses('kube-ipvs0', 'IPv4')).toEqual(['10.96.0.1']);
    expect(await ip.addresses('kube-ipvs0', 'IPv6')).toEqual(['fd00::10']);
    const err = await ip
      .batch([
        addressCommand('add', '10.96.0.1', 'kube-ipvs0'),
        addressCommand('add', '10.96.0.2', 'kube-ipvs0'),
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpBatchError);
    expect((err as IpBatchError).failures.map((f) => f.line)).toEqual([
      'addr add 10.96.0.1/32 dev kube-ipvs0',
    ]);
    // -force: the good line still applied
    expect(await ip.addresses('kube-ipvs0', 'IPv4')).toEqual(['10.96.0.1', '10.96.0.2']);
  });
});

/**
 * `settle`: the kernel finishes (skipped) DAD in a work item after `ip addr add` returns, so
 * a listing right after the add may still say `tentative` under load; wait that out.
 */
async function play(runner: CommandRunner, script: ToolScript, settle = false) {
  const out: { exitCode: number; stdout: string; stderr: string }[] = [];
  for (const step of script.steps) {
    const run = () =>
      runner.run('ip', step.args, {
        reject: false,
        ...(step.input !== undefined ? { input: step.input } : {}),
      });
    let r = await run();
    for (let i = 0; settle && i < 20 && r.stdout.includes(' tentative '); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      r = await run();
    }
    out.push({ exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr.trim() });
  }
  return out;
}

describeKernel('in-memory ip against real ip (scratch namespace)', () => {
  it('same exit codes, messages and addr show output', async () => {
    await withScratchNetns(async ({ runner }) => {
      for (const script of ipScripts('bridge')) {
        const fake = new FakeIp();
        fake.ipv6Dad = false; // the scratch namespace turns DAD off
        const fakeRunner: CommandRunner = {
          run: async (_c, args, o) => fake.run(args, inputText(o?.input ?? '')),
        };
        expect(await play(fakeRunner, script)).toEqual(await play(runner, script, true));
      }
    });
  });

  it('same `ip -j addr show` (the node addresses IPVS mode follows), but for the random MAC and lo', async () => {
    await withScratchNetns(async ({ runner }) => {
      const fake = new FakeIp();
      fake.ipv6Dad = false; // the scratch namespace turns DAD off
      const fakeRunner: CommandRunner = {
        run: async (_c, args, o) => fake.run(args, inputText(o?.input ?? '')),
      };
      const shown = async (r: CommandRunner, args: string[]) => {
        const { stdout } = await r.run('ip', args);
        if (!args.includes('-j')) return stdout;
        const links = JSON.parse(stdout) as Record<string, unknown>[];
        return links.filter((l) => l['ifname'] !== 'lo').map(({ address: _mac, ...rest }) => rest);
      };
      for (const r of [fakeRunner, runner]) {
        await r.run('ip', ['link', 'add', 'eth9', 'type', 'bridge']);
        await r.run('ip', ['link', 'add', 'veth9', 'type', 'bridge']);
        await r.run('ip', ['-batch', '-'], {
          input: [
            'addr add 10.0.0.5/24 dev eth9',
            'addr add fd00::5/64 dev eth9',
            'addr add 10.0.0.6/24 dev eth9', // secondary: 10.0.0.5's subnet and prefix
            'addr add fd00::6/64 dev eth9',
            'addr add 10.1.0.1/16 dev eth9',
            'addr add 10.0.0.50/32 dev eth9', // a keepalived-style VIP: a primary of its own
            'addr add 10.0.0.7/24 dev eth9',
            'addr del 10.0.0.6/24 dev eth9', // a secondary goes alone
            '',
          ].join('\n'),
        });
      }
      const same = async () => {
        for (const args of [
          ['-j', 'addr', 'show'],
          ['-j', '-4', 'addr', 'show'],
          ['-j', '-6', 'addr', 'show'],
          ['-j', 'addr', 'show', 'dev', 'veth9'],
          ['-o', 'addr', 'show', 'dev', 'eth9'],
        ]) {
          const fakeOut = await shown(fakeRunner, args);
          expect(fakeOut, args.join(' ')).toEqual(await shown(runner, args));
        }
      };
      await same();
      expect(parseIpAddrJson((await fakeRunner.run('ip', ['-j', 'addr', 'show'])).stdout)).toEqual({
        eth9: ['10.0.0.5/24', '10.1.0.1/16', '10.0.0.50/32', '10.0.0.7/24', 'fd00::6/64', 'fd00::5/64'],
        veth9: [],
      });
      // the primary goes, and its secondaries with it
      for (const r of [fakeRunner, runner]) await r.run('ip', ['addr', 'del', '10.0.0.5/24', 'dev', 'eth9']);
      await same();
      expect(parseIpAddrJson((await fakeRunner.run('ip', ['-j', '-4', 'addr', 'show'])).stdout)).toEqual({
        eth9: ['10.1.0.1/16', '10.0.0.50/32'],
      });
    });
  });
});
