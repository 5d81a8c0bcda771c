/**
 * The conntrack CLI wrapper, over output recorded from conntrack-tools 1.4.7 (Debian 12,
 * kernel 6.x) in a scratch namespace.
 */
import { describe, expect, it } from 'vitest';
import {
  Conntrack,
  ConntrackParseError,
  deleteArgs,
  listArgs,
  parseConntrackLine,
  parseConntrackListing,
  parseDeletedCount,
} from '../../src/kernel/conntrack.js';
import { CommandError, RecordingRunner } from '../../src/kernel/exec.js';

/** `conntrack -L -o extended -f ipv4 -p udp` (stdout) */
const UDP_V4_EXTENDED = `ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=40000 dport=30053 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=30053 dport=40000 mark=0 use=1
ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.5 sport=40000 dport=30053 [UNREPLIED] src=10.0.0.5 dst=10.0.0.1 sport=30053 dport=40000 mark=0 use=2
ipv4     2 udp      17 29 src=10.0.0.1 dst=10.96.0.10 sport=40000 dport=53 [UNREPLIED] src=127.0.0.1 dst=10.0.0.1 sport=5353 dport=40000 mark=0 use=1
`;

/** `conntrack -L -o extended -f ipv6 -p udp` (stdout) */
const UDP_V6_EXTENDED = `ipv6     10 udp      17 29 src=fd00::1 dst=fd00:96::10 sport=56576 dport=53 [UNREPLIED] src=::1 dst=fd00::1 sport=5353 dport=56576 mark=0 use=1
ipv6     10 udp      17 29 src=fd00::1 dst=fd00::7 sport=56576 dport=9999 [UNREPLIED] src=fd00::7 dst=fd00::1 sport=9999 dport=56576 mark=0 use=2
`;

/** plain `conntrack -L` and `-o id` lines */
const UDP_PLAIN =
  'udp      17 29 src=fd00::1 dst=fd00::7 sport=56576 dport=9999 [UNREPLIED] src=fd00::7 dst=fd00::1 sport=9999 dport=56576 mark=0 use=2';
const UDP_WITH_ID =
  'udp      17 29 src=10.0.0.1 dst=10.96.0.10 sport=40000 dport=53 [UNREPLIED] src=127.0.0.1 dst=10.0.0.1 sport=5353 dport=40000 mark=0 use=1 id=2318510076';
const TCP_EXTENDED =
  'ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=53508 dport=8080 src=127.0.0.1 dst=127.0.0.1 sport=8080 dport=53508 [ASSURED] mark=0 use=1';

const NOTHING_DELETED = 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n';
const ONE_DELETED = 'conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n';

describe('parseConntrackListing', () => {
  it('reads both tuples of each IPv4 flow; a DNATed reply comes from the endpoint', () => {
    const flows = parseConntrackListing(UDP_V4_EXTENDED);
    expect(flows).toHaveLength(3);
    expect(flows[2]).toEqual({
      family: 'IPv4',
      protocol: 17,
      original: { src: '10.0.0.1', dst: '10.96.0.10', sport: 40000, dport: 53 },
      reply: { src: '127.0.0.1', dst: '10.0.0.1', sport: 5353, dport: 40000 },
    });
  });

  it('reads IPv6 flows and canonicalises the addresses', () => {
    const flows = parseConntrackListing(UDP_V6_EXTENDED);
    expect(flows.map((f) => [f.family, f.original.dst, f.reply.src, f.reply.sport])).toEqual([
      ['IPv6', 'fd00:96::10', '::1', 5353],
      ['IPv6', 'fd00::7', 'fd00::7', 9999],
    ]);
    expect(parseConntrackLine(UDP_PLAIN.replace('dst=fd00::7', 'dst=FD00:0:0::7')).original.dst).toBe(
      'fd00::7',
    );
  });

  it('reads the plain format (no family column), with or without id=, and TCP', () => {
    expect(parseConntrackLine(UDP_PLAIN).family).toBe('IPv6');
    expect(parseConntrackLine(UDP_WITH_ID).reply).toEqual({
      src: '127.0.0.1',
      dst: '10.0.0.1',
      sport: 5353,
      dport: 40000,
    });
    expect(parseConntrackLine(TCP_EXTENDED)).toMatchObject({ protocol: 6, original: { dport: 8080 } });
  });

  it('an empty table is no flows', () => {
    expect(parseConntrackListing('')).toEqual([]);
  });

  it('refuses a line it cannot read, naming the line', () => {
    const broken = `${UDP_V4_EXTENDED}ipv4     2 udp      17 29 src=10.0.0.1 dst=10.96.0.10 sport=40000 dport=53\n`;
    expect(() => parseConntrackListing(broken)).toThrow(ConntrackParseError);
    expect(() => parseConntrackListing(broken)).toThrow(/line 4: expected src= and dst= twice/);
    expect(() => parseConntrackLine(UDP_WITH_ID.replace('sport=5353', 'sport=99999'))).toThrow(
      /bad port in the reply tuple/,
    );
    expect(() => parseConntrackLine(UDP_WITH_ID.replace('src=127.0.0.1', 'src=localhost'))).toThrow(
      /bad address in the reply tuple/,
    );
    expect(() => parseConntrackLine(`ipv6     10 ${UDP_WITH_ID}`)).toThrow(/IPv6 flow with IPv4 addresses/);
    expect(() =>
      parseConntrackLine('conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.'),
    ).toThrow(/no key=value fields/);
  });
});

describe('arguments', () => {
  it('lists one family and protocol, extended', () => {
    expect(listArgs('IPv4', 'UDP')).toEqual(['-L', '-f', 'ipv4', '-p', 'udp', '-o', 'extended']);
    expect(listArgs('IPv6', 'SCTP')).toEqual(['-L', '-f', 'ipv6', '-p', 'sctp', '-o', 'extended']);
  });

  it("deletes by kube-proxy's filters", () => {
    expect(
      deleteArgs({
        family: 'IPv4',
        protocol: 'UDP',
        origDst: '10.96.0.10',
        origDstPort: 53,
        replySrc: '10.244.1.6',
        replySrcPort: 5353,
      }),
    ).toEqual(
      '-D -f ipv4 -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.6 --reply-port-src 5353'.split(
        ' ',
      ),
    );
    expect(
      deleteArgs({
        family: 'IPv6',
        protocol: 'UDP',
        origDstPort: 30053,
        replySrc: 'FD00::6',
        replySrcPort: 53,
      }),
    ).toEqual('-D -f ipv6 -p udp --orig-port-dst 30053 --reply-src fd00::6 --reply-port-src 53'.split(' '));
  });

  it('refuses a filter that would delete a whole protocol, or bad values', () => {
    expect(() => deleteArgs({ family: 'IPv4', protocol: 'UDP' })).toThrow(/matches every UDP flow/);
    expect(() => deleteArgs({ family: 'IPv4', protocol: 'UDP', origDst: 'fd00::1' })).toThrow(
      /--orig-dst "fd00::1" is not an IPv4 address/,
    );
    expect(() => deleteArgs({ family: 'IPv4', protocol: 'UDP', origDstPort: 0 })).toThrow(
      /--orig-port-dst 0/,
    );
  });

  it('reads the deleted count from the summary', () => {
    expect(parseDeletedCount(ONE_DELETED)).toBe(1);
    expect(parseDeletedCount(NOTHING_DELETED)).toBe(0);
    expect(parseDeletedCount('')).toBeNull();
  });
});

describe('Conntrack', () => {
  const filter = { family: 'IPv4', protocol: 'UDP', origDst: '10.96.0.10', origDstPort: 53 } as const;

  it('lists through the runner', async () => {
    const runner = new RecordingRunner().on('conntrack -L', {
      stdout: UDP_V4_EXTENDED,
      stderr: 'conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.\n',
    });
    const flows = await new Conntrack(runner).list('IPv4', 'UDP');
    expect(flows).toHaveLength(3);
    expect(runner.commandLines()).toEqual(['conntrack -L -f ipv4 -p udp -o extended']);
  });

  it('a failed listing throws', async () => {
    const runner = new RecordingRunner().on('conntrack -L', {
      exitCode: 1,
      stderr: 'conntrack v1.4.7 (conntrack-tools): Operation failed: Operation not permitted\n',
    });
    await expect(new Conntrack(runner).list('IPv4', 'UDP')).rejects.toThrow(/Operation not permitted/);
  });

  it('nothing to delete (exit 1, "0 flow entries") is not an error', async () => {
    const runner = new RecordingRunner().on('conntrack -D', { exitCode: 1, stderr: NOTHING_DELETED });
    await expect(new Conntrack(runner).delete(filter)).resolves.toBe(0);
    expect(runner.commandLines()).toEqual([
      'conntrack -D -f ipv4 -p udp --orig-dst 10.96.0.10 --orig-port-dst 53',
    ]);
  });

  it('returns the deleted count, and throws on a real failure', async () => {
    const ok = new RecordingRunner().on('conntrack -D', {
      stdout:
        'udp      17 26 src=10.0.0.1 dst=10.96.0.10 sport=40000 dport=53 [UNREPLIED] src=127.0.0.1 dst=10.0.0.1 sport=5353 dport=40000 mark=0 use=1\n',
      stderr: ONE_DELETED,
    });
    await expect(new Conntrack(ok).delete(filter)).resolves.toBe(1);
    const bad = new RecordingRunner().on('conntrack -D', {
      exitCode: 2,
      stderr: "conntrack v1.4.7 (conntrack-tools): unknown option `--bogus'\n",
    });
    await expect(new Conntrack(bad).delete(filter)).rejects.toThrow(CommandError);
  });
});
