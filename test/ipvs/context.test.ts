import { describe, expect, it } from 'vitest';
import { insideCIDRs, resolveScheduler } from '../../src/backends/ipvs/context.js';
import { IPVS_SCHEDULERS } from '../../src/backends/ipvs/state.js';
import { InputError } from '../../src/errors.js';
import { node } from '../unit/builders.js';
import { context } from './builders.js';

describe('the IPVS render context', () => {
  it('resolves the scheduler: blank is rr, every known one passes, anything else names the field', () => {
    expect(resolveScheduler('')).toBe('rr');
    for (const s of IPVS_SCHEDULERS) expect(resolveScheduler(s)).toBe(s);
    expect(() => resolveScheduler('fastest')).toThrow(InputError);
    expect(() => context({ scheduler: 'rr -j ACCEPT' })).toThrow(
      /^ipvs\.scheduler: "rr -j ACCEPT" is not one of/,
    );
    expect(context({ scheduler: 'mh' }).schedulerFlags).toEqual(['mh-port']);
    expect(context({ scheduler: 'sh' }).schedulerFlags).toEqual([]);
  });

  it('prints the mark as kube-proxy does and refuses a bad bit', () => {
    expect(context().mark).toBe('0x00004000');
    expect(context({ masqueradeBit: 0 }).mark).toBe('0x00000001');
    expect(() => context({ masqueradeBit: 32 })).toThrow(InputError);
  });

  it('builds the shared local-traffic detector, or none without a CIDR of the family', () => {
    expect(context().localDetector).toEqual({
      ifLocal: '-s 10.244.0.0/16',
      ifNotLocal: '! -s 10.244.0.0/16',
    });
    expect(context({}, 'IPv6', node({ ips: ['fd00::2'] })).localDetector).toBeNull();
    expect(
      context({ detectLocalMode: 'InterfaceNamePrefix', interfaceNamePrefix: 'veth' }).localDetector,
    ).toEqual({
      ifLocal: '-i veth+',
      ifNotLocal: '! -i veth+',
    });
    expect(() => context({ clusterCIDR: '10.244.0.0/16 -j ACCEPT' })).toThrow(/^clusterCIDR\[0\]: /);
  });

  it('node addresses: every interface but kube-ipvs0, same family, no loopback, no IPv6 link-local', () => {
    const interfaces = {
      lo: ['127.0.0.1/8', '::1/128'],
      eth0: ['192.168.0.2/24', 'fe80::1/64', 'fd00::2/64'],
      cni0: ['10.244.1.1/24', '169.254.1.1/16'],
      'kube-ipvs0': ['10.96.0.1/32', 'fd00:96::1/128'],
    };
    expect([...context({ interfaces }).nodeAddresses]).toEqual(['10.244.1.1', '169.254.1.1', '192.168.0.2']);
    expect([...context({ interfaces }, 'IPv6').nodeAddresses]).toEqual(['fd00::2']);
  });

  it('refuses a malformed interface address, naming it', () => {
    expect(() => context({ interfaces: { eth0: ['192.168.0.2'] } })).toThrow(/^interfaces\.eth0\[0\]: /);
  });

  it('takes the first node IP of the family as the primary node IP; none is null', () => {
    const n = node({ ips: ['fd00::2', '192.168.0.5', '192.168.0.2'] });
    expect(context({}, 'IPv4', n).primaryNodeIP).toBe('192.168.0.5');
    expect(context({}, 'IPv6', n).primaryNodeIP).toBe('fd00::2');
    expect(context({}, 'IPv6', node()).primaryNodeIP).toBeNull();
  });

  it('validates the applier settings: timeouts not negative, excludeCIDRs CIDRs (kept per family)', () => {
    expect(() => context({ tcpTimeoutMs: -1 })).toThrow(/^ipvs\.tcpTimeout: /);
    expect(() => context({ excludeCIDRs: ['10.0.0.0/8', 'nope'] })).toThrow(/^ipvs\.excludeCIDRs\[1\]: /);
    const excludeCIDRs = ['10.0.0.1/8', 'fd00::/8'];
    expect(context({ excludeCIDRs }).excludeCIDRs).toEqual(['10.0.0.0/8']);
    expect(context({ excludeCIDRs }, 'IPv6').excludeCIDRs).toEqual(['fd00::/8']);
    expect(insideCIDRs('10.1.2.3', ['10.0.0.0/8'])).toBe(true);
    expect(insideCIDRs('11.1.2.3', ['10.0.0.0/8'])).toBe(false);
  });
});
