import { describe, expect, it } from 'vitest';
import {
  cidrContains,
  familyOfText,
  isLoopback,
  joinHostPort,
  parseCIDR,
  parseIP,
} from '../../src/model/ip.js';

const text = (s: string) => parseIP(s)?.text ?? null;

describe('parseIP: IPv4 (sloppy, spec §1)', () => {
  it.each([
    ['10.1.1.1', '10.1.1.1'],
    ['172.30.0.041', '172.30.0.41'],
    ['010.001.1.1', '10.1.1.1'], // leading zeros are decimal, not octal
    ['10.180.00.001', '10.180.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['000255.0.0.0', '255.0.0.0'],
  ])('%s -> %s', (input, expected) => {
    expect(parseIP(input)).toMatchObject({ family: 'IPv4', text: expected });
  });

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '1.2.3.-4',
    '1.2.3.4 ',
    ' 1.2.3.4',
    '1..2.3',
    '1.2.3.4/32',
    '0x1.2.3.4',
    '1.2.3.a',
    '1.2.3.4\n-j ACCEPT',
    '１.2.3.4', // full-width digit
  ])('rejects %j', (input) => {
    expect(parseIP(input)).toBeNull();
  });

  it('keeps the 4 bytes', () => {
    expect([...parseIP('192.168.0.2')!.bytes]).toEqual([192, 168, 0, 2]);
  });
});

describe('parseIP: IPv6 (RFC 5952 canonical output)', () => {
  it.each([
    ['::', '::'],
    ['1::', '1::'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['FD00:0000:0000:0000:0000:0000:0000:ABCD', 'fd00::abcd'],
    ['FF06:0:0:0:0:0:0:C1', 'ff06::c1'],
    ['2001:DB8::0001', '2001:db8::1'],
    ['1:0:0:1:0:0:0:1', '1:0:0:1::1'], // the longest run of zeros is compressed
    ['1:0:0:0:1:0:0:1', '1::1:0:0:1'], // the first of two equally long runs
    ['1:0:1:1:1:1:1:1', '1:0:1:1:1:1:1:1'], // a single zero group is not compressed
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'], // embedded IPv4, printed in hex as Go does
    ['::1.2.3.4', '::102:304'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['64:ff9b::01.02.03.04', '64:ff9b::102:304'], // sloppy leading zeros in the embedded IPv4
  ])('%s -> %s', (input, expected) => {
    expect(parseIP(input)).toMatchObject({ family: 'IPv6', text: expected });
  });

  it.each([
    '::ffff:1.2.3.4', // v4-mapped: refused rather than silently becoming IPv4
    '::FFFF:10.0.0.1',
    '0:0:0:0:0:ffff:a00:1',
    ':::',
    '1::2::3',
    ':1::',
    '1:::2',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8::',
    '00001::',
    '12345::',
    'g::1',
    '1.2.3.4::',
    '1.2.3.4::1',
    '::1.2.3',
    'fe80::1%eth0',
    '[::1]',
    '::1 ',
  ])('rejects %j', (input) => {
    expect(parseIP(input)).toBeNull();
  });

  it('keeps the 16 bytes', () => {
    expect([...parseIP('2001:db8::1')!.bytes]).toEqual([
      0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
  });

  it('re-parses its own output to the same text', () => {
    for (const s of ['::', '1::', 'fd00::abcd', '1::1:0:0:1', '64:ff9b::102:304', '10.1.1.1']) {
      expect(text(text(s)!)).toBe(text(s));
    }
  });

  it('accepts any number of leading zeros in an IPv4 octet, as ParseIPSloppy does', () => {
    // k8s.io/utils ParseIPSloppy strips leading zeros with `0*(0|[1-9][0-9]*)`: no length limit.
    expect(text('00000000000000000010.1.1.1')).toBe('10.1.1.1');
  });
});

describe('parseCIDR', () => {
  it.each([
    ['203.0.113.000/025', '203.0.113.0/25'], // spec §1 example
    ['10.1.2.3/8', '10.0.0.0/8'], // host bits masked off
    ['10.255.255.255/9', '10.128.0.0/9'],
    ['192.168.1.77/32', '192.168.1.77/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['1.2.3.4/0', '0.0.0.0/0'],
    ['10.0.0.0/08', '10.0.0.0/8'], // Go's dtoi takes leading zeros in the prefix too
    ['fd00::1/064', 'fd00::/64'],
    ['2001:db8:abcd:12ff::/60', '2001:db8:abcd:12f0::/60'],
    ['::/0', '::/0'],
    ['FD00::1/128', 'fd00::1/128'],
    ['2001:db8::ffff/127', '2001:db8::fffe/127'],
  ])('%s -> %s', (input, expected) => {
    expect(parseCIDR(input)?.text).toBe(expected);
  });

  it.each([
    '10.0.0.0',
    '10.0.0.0/',
    '10.0.0.0/33',
    '::/129',
    '10.0.0.0/-1',
    '10.0.0.0/8 ',
    '10.0.0.0/8/8',
    '10.0.0/8',
    '/8',
    '10.0.0.0/0x8',
    '::ffff:10.0.0.0/104',
    '10.0.0.0/8\n-j ACCEPT',
  ])('rejects %j', (input) => {
    expect(parseCIDR(input)).toBeNull();
  });

  it('reports family and prefix', () => {
    expect(parseCIDR('10.0.0.0/8')).toMatchObject({ family: 'IPv4', prefix: 8 });
    expect(parseCIDR('fd00::/8')).toMatchObject({ family: 'IPv6', prefix: 8 });
  });
});

describe('cidrContains, isLoopback, joinHostPort, familyOfText', () => {
  it('tests membership after masking, within one family', () => {
    const c = parseCIDR('192.168.0.0/16')!;
    expect(cidrContains(c, parseIP('192.168.255.1')!)).toBe(true);
    expect(cidrContains(c, parseIP('192.169.0.1')!)).toBe(false);
    expect(cidrContains(parseCIDR('0.0.0.0/0')!, parseIP('8.8.8.8')!)).toBe(true);
    expect(cidrContains(parseCIDR('0.0.0.0/0')!, parseIP('::1')!)).toBe(false);
    expect(cidrContains(parseCIDR('fd00::/8')!, parseIP('fd12::1')!)).toBe(true);
    expect(cidrContains(parseCIDR('10.0.0.0/31')!, parseIP('10.0.0.1')!)).toBe(true);
    expect(cidrContains(parseCIDR('10.0.0.0/31')!, parseIP('10.0.0.2')!)).toBe(false);
  });

  it('knows the loopback addresses', () => {
    expect(isLoopback(parseIP('127.0.0.1')!)).toBe(true);
    expect(isLoopback(parseIP('127.255.0.9')!)).toBe(true);
    expect(isLoopback(parseIP('::1')!)).toBe(true);
    expect(isLoopback(parseIP('128.0.0.1')!)).toBe(false);
    expect(isLoopback(parseIP('::2')!)).toBe(false);
  });

  it('brackets IPv6 endpoint strings only', () => {
    expect(joinHostPort(parseIP('10.1.1.1')!, 80)).toBe('10.1.1.1:80');
    expect(joinHostPort(parseIP('FF06::C1')!, 80)).toBe('[ff06::c1]:80');
  });

  it('tells the family of a text', () => {
    expect(familyOfText('10.0.0.1')).toBe('IPv4');
    expect(familyOfText('fd00::1')).toBe('IPv6');
    expect(familyOfText('nope')).toBeNull();
  });
});
