/**
 * An in-memory `ip` (iproute2 6.1) for links and their addresses, enough for kube-ipvs0
 * and the node's addresses: `link show|add|del`, `[-o|-j] [-4|-6] addr show [dev]` (no
 * dev: every link, as the host probe reads them), and `[-force] -batch -` of
 * `addr add|del`. Messages, exit codes and the `-o` and `-j` formats are those measured on
 * this project's hosts (see src/kernel/ip-link.ts) and checked against the real tool with a
 * bridge link (test/ipvs-apply/ip-link.test.ts), and with a real dummy link on Debian 12's
 * kernel in the VM guest (test/vm/guest/checks/ipvs-doubles.ts). The `dummy` type can be
 * switched off, as it is missing from those hosts' kernel.
 *
 * Some things depend on the kernel, not on ip: an address error's message (6.1 answers
 * `RTNETLINK answers: File exists`, later kernels `Error: ipv4: Address already assigned.`,
 * see `kernelMessages`); IPv6 duplicate address detection, which a dummy link skips (it is
 * NOARP): its addresses are never `tentative`, unlike a bridge's while it is down; and the
 * order of a listing: IPv4 primaries, then IPv4 `secondary` addresses (in a primary's
 * subnet, with its prefix length), then IPv6 newest first. Deleting a primary deletes its
 * secondaries (net.ipv4.conf.*.promote_secondaries=0, the kernel's default).
 */
import { type IPFamily, type ParsedIP, parseIP } from '../../model/ip.js';
import type { RunResult } from '../exec.js';

interface FakeAddress {
  family: IPFamily;
  address: string;
  prefix: number;
  /** the subnet with its prefix length (`10.0.0.0/24`): IPv4 addresses sharing one are primary and secondaries */
  subnet: string;
}

type ListedAddress = FakeAddress & { secondary: boolean };

interface FakeLink {
  index: number;
  name: string;
  type: string;
  addresses: FakeAddress[];
}

class IpFailure extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const ok = (stdout = ''): RunResult => ({ stdout, stderr: '', exitCode: 0 });

function subnetOf(ip: ParsedIP, prefix: number): string {
  const bytes = [...ip.bytes].map((b, i) => b & (0xff00 >> Math.max(0, Math.min(8, prefix - i * 8))) & 0xff);
  return `${bytes.join('.')}/${prefix}`;
}

export class FakeIp {
  /** false: `ip link add ... type dummy` fails with "Unknown device type" */
  dummyAvailable = true;
  /** link types `ip link add` accepts besides dummy (bridge: to compare with real ip where dummy is missing) */
  readonly otherTypes = new Set(['bridge']);
  /** net.ipv6.conf.*.accept_dad: with it, IPv6 addresses on a link that is down stay `tentative` (not on a dummy) */
  ipv6Dad = true;
  /** address errors as the kernel words them: `extack` (kernel 6.x from about 6.3) or `rtnetlink` (6.1) */
  kernelMessages: 'extack' | 'rtnetlink' = 'extack';
  private readonly links = new Map<string, FakeLink>();
  private nextIndex = 2;

  run(args: readonly string[], input = ''): RunResult {
    const a = [...args];
    let force = false;
    let oneline = false;
    let json = false;
    let family: IPFamily | null = null;
    let batch = false;
    while (a[0]?.startsWith('-')) {
      const flag = a.shift()!;
      if (flag === '-force') force = true;
      else if (flag === '-o' || flag === '-oneline') oneline = true;
      else if (flag === '-j' || flag === '-json') json = true;
      else if (flag === '-4') family = 'IPv4';
      else if (flag === '-6') family = 'IPv6';
      else if (flag === '-batch') {
        batch = true;
        a.shift();
      } else return { stdout: '', stderr: `Option "${flag}" is unknown, try "ip -help".\n`, exitCode: 255 };
    }
    if (batch) return this.batch(input, force);
    try {
      return this.command(a, { oneline, json, family });
    } catch (e) {
      if (e instanceof IpFailure) return { stdout: '', stderr: `${e.message}\n`, exitCode: e.exitCode };
      throw e;
    }
  }

  private batch(input: string, force: boolean): RunResult {
    let stderr = '';
    let failed = false;
    const lines = input.split('\n');
    for (const [i, raw] of lines.entries()) {
      const words = raw
        .trim()
        .split(/\s+/)
        .filter((w) => w !== '');
      if (words.length === 0) continue;
      try {
        this.command(words, { oneline: false, json: false, family: null });
      } catch (e) {
        if (!(e instanceof IpFailure)) throw e;
        if (e.exitCode === 255) return { stdout: '', stderr: `${stderr}${e.message}\n`, exitCode: 255 };
        stderr += `${e.message}\nCommand failed -:${i + 1}\n`;
        failed = true;
        if (!force) break;
      }
    }
    return { stdout: '', stderr, exitCode: failed ? 1 : 0 };
  }

  private link(name: string | undefined, missing: 'show' | 'change'): FakeLink {
    const link = name === undefined ? undefined : this.links.get(name);
    if (!link)
      throw new IpFailure(
        missing === 'show' ? `Device "${name}" does not exist.` : `Cannot find device "${name}"`,
      );
    return link;
  }

  private command(
    words: string[],
    opts: { oneline: boolean; json: boolean; family: IPFamily | null },
  ): RunResult {
    const [object, verb, ...rest] = words;
    const devName = (ws: string[]) => (ws[0] === 'dev' || ws[0] === 'name' ? ws[1] : ws[0]);
    if (object === 'link' || object === 'l') {
      if (verb === 'show' || verb === undefined) {
        const link = this.link(devName(rest), 'show');
        const text = `${link.index}: ${link.name}: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000`;
        return ok(
          `${opts.oneline ? `${text}\\    link/ether 00:00:00:00:00:00 brd ff:ff:ff:ff:ff:ff` : text}\n`,
        );
      }
      if (verb === 'add') {
        const name = devName(rest);
        const type = rest[rest.indexOf('type') + 1];
        if (!name || rest.indexOf('type') === -1)
          throw new IpFailure('Not enough information: "type" argument is required', 255);
        const known = (type === 'dummy' && this.dummyAvailable) || this.otherTypes.has(type ?? '');
        if (!known) throw new IpFailure('Error: Unknown device type.', 2);
        if (this.links.has(name)) throw new IpFailure('RTNETLINK answers: File exists', 2);
        this.links.set(name, { index: this.nextIndex++, name, type: type ?? '', addresses: [] });
        return ok();
      }
      if (verb === 'del' || verb === 'delete') {
        const link = this.link(devName(rest), 'change');
        this.links.delete(link.name);
        return ok();
      }
    }
    if (object === 'addr' || object === 'address' || object === 'a') {
      if (verb === 'show' || verb === 'list' || verb === undefined) {
        const name = devName(rest);
        const shown = (link: FakeLink) =>
          this.listed(link).filter((x) => opts.family === null || x.family === opts.family);
        // Without a device, a family filter leaves out the links without its addresses.
        const links =
          name === undefined
            ? [...this.links.values()].filter((l) => opts.family === null || shown(l).length > 0)
            : [this.link(name, 'show')];
        if (opts.json)
          return ok(`${JSON.stringify(links.map((l) => this.jsonLink(l, shown(l), opts.family)))}\n`);
        const lines = links.flatMap((link) =>
          shown(link).map((x) =>
            x.family === 'IPv4'
              ? `${link.index}: ${link.name}    inet ${x.address}/${x.prefix} scope global ${x.secondary ? 'secondary ' : ''}${link.name}\\       valid_lft forever preferred_lft forever`
              : `${link.index}: ${link.name}    inet6 ${x.address}/${x.prefix} scope global ${this.tentative(link) ? 'tentative ' : ''}\\       valid_lft forever preferred_lft forever`,
          ),
        );
        return ok(lines.map((l) => `${l}\n`).join(''));
      }
      if (verb === 'add' || verb === 'del' || verb === 'delete') {
        const [cidr, dev, name] = rest;
        const slash = (cidr ?? '').indexOf('/');
        const ip = parseIP(slash === -1 ? (cidr ?? '') : cidr!.slice(0, slash));
        if (!ip || dev !== 'dev')
          throw new IpFailure(`Error: any valid prefix is expected rather than "${cidr}".`, 255);
        const prefix = slash === -1 ? (ip.family === 'IPv4' ? 32 : 128) : Number(cidr!.slice(slash + 1));
        const link = this.link(name, 'change');
        const v = ip.family === 'IPv4' ? 'ipv4' : 'ipv6';
        const at = link.addresses.findIndex((x) => x.address === ip.text && x.prefix === prefix);
        const rtnetlink = this.kernelMessages === 'rtnetlink';
        if (verb === 'add') {
          if (at !== -1)
            throw new IpFailure(
              rtnetlink
                ? 'RTNETLINK answers: File exists'
                : ip.family === 'IPv4'
                  ? 'Error: ipv4: Address already assigned.'
                  : 'Error: ipv6: address already assigned.',
            );
          link.addresses.push({ family: ip.family, address: ip.text, prefix, subnet: subnetOf(ip, prefix) });
        } else {
          if (at === -1)
            throw new IpFailure(
              rtnetlink
                ? 'RTNETLINK answers: Cannot assign requested address'
                : `Error: ${v}: ${ip.family === 'IPv4' ? 'Address' : 'address'} not found.`,
            );
          const gone = link.addresses[at]!;
          const inSubnet = (x: FakeAddress) => x.family === 'IPv4' && x.subnet === gone.subnet;
          const primary =
            gone.family === 'IPv4' && gone.prefix < 32 && !link.addresses.slice(0, at).some(inSubnet);
          // a primary takes its secondaries (every later address of its subnet) with it
          if (primary) link.addresses = link.addresses.filter((x) => !inSubnet(x));
          else link.addresses.splice(at, 1);
        }
        return ok();
      }
    }
    throw new IpFailure(`Command "${verb ?? object}" is unknown, try "ip ${object ?? ''} help".`, 255);
  }

  /** The link's addresses in the kernel's order, each IPv4 one marked when it is secondary. */
  private listed(link: FakeLink): ListedAddress[] {
    const subnets = new Set<string>();
    const v4 = link.addresses
      .filter((x) => x.family === 'IPv4')
      .map((x) => {
        const secondary = subnets.has(x.subnet);
        subnets.add(x.subnet);
        return { ...x, secondary };
      });
    const v6 = link.addresses
      .filter((x) => x.family === 'IPv6')
      .reverse()
      .map((x) => ({ ...x, secondary: false }));
    return [...v4.filter((x) => !x.secondary), ...v4.filter((x) => x.secondary), ...v6];
  }

  private tentative(link: FakeLink): boolean {
    return this.ipv6Dad && link.type !== 'dummy';
  }

  /**
   * One link of `ip -j addr show`, with iproute2 6.1's fields for a link that is down (a
   * family filter leaves out the link-layer ones, and -6 the qdisc and group too, as ip does).
   */
  private jsonLink(
    link: FakeLink,
    addresses: readonly ListedAddress[],
    family: IPFamily | null,
  ): Record<string, unknown> {
    return {
      ifindex: link.index,
      ifname: link.name,
      flags: link.type === 'dummy' ? ['BROADCAST', 'NOARP'] : ['BROADCAST', 'MULTICAST'],
      mtu: 1500,
      ...(family === 'IPv6' ? {} : { qdisc: 'noop' }),
      operstate: 'DOWN',
      ...(family === 'IPv6' ? {} : { group: 'default' }),
      txqlen: 1000,
      ...(family === null
        ? { link_type: 'ether', address: '00:00:00:00:00:00', broadcast: 'ff:ff:ff:ff:ff:ff' }
        : {}),
      addr_info: addresses.map((x) => ({
        family: x.family === 'IPv4' ? 'inet' : 'inet6',
        local: x.address,
        prefixlen: x.prefix,
        scope: 'global',
        ...(x.secondary ? { secondary: true } : {}),
        ...(x.family === 'IPv4' ? { label: link.name } : this.tentative(link) ? { tentative: true } : {}),
        valid_life_time: 4294967295,
        preferred_life_time: 4294967295,
      })),
    };
  }

  // ------------------------------------------------------------------------------------------
  // For tests

  hasLink(name: string): boolean {
    return this.links.has(name);
  }

  /** The link's addresses (canonical, sorted), or undefined without the link. */
  addressesOf(name: string): string[] | undefined {
    return this.links
      .get(name)
      ?.addresses.map((a) => a.address)
      .sort();
  }
}
