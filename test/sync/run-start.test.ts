/**
 * startProxy tells each backend it is starting before the source lists anything, so a
 * backend can read the kernel meanwhile (IptablesBackend.starting), and a backend without
 * the hook is fine.
 */
import { describe, expect, it } from 'vitest';
import { neutralHostFacts } from '../../src/config/host.js';
import { defaultKubeProxyConfiguration } from '../../src/config/kubeproxy.js';
import type { ObjectSource, ProxyBackend } from '../../src/sync/backend.js';
import { startProxy } from '../../src/sync/run.js';
import { collectingLogger, FakeClock, ScriptedBackend } from './helpers.js';

describe('startProxy', () => {
  it('calls starting() on every backend that has it, before the source starts', async () => {
    const order: string[] = [];
    const clock = new FakeClock();
    const withHook = Object.assign(new ScriptedBackend('IPv4', clock), {
      starting: () => order.push('backend starting'),
    });
    const withoutHook: ProxyBackend = new ScriptedBackend('IPv6', clock);
    const source: ObjectSource = {
      start: async () => {
        order.push('source start');
      },
      stop: async () => undefined,
    };
    const proxy = await startProxy({
      config: defaultKubeProxyConfiguration(),
      host: { ...neutralHostFacts(), nodeName: 'node-1' },
      families: ['IPv4', 'IPv6'],
      source,
      createBackends: () => [withHook, withoutHook],
      log: collectingLogger().log,
      clock,
    });
    expect(order).toEqual(['backend starting', 'source start']);
    await proxy.stop();
  });
});
