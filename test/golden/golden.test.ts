import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { normalizeRestore } from '../../src/backends/iptables/restore-text.js';
import { listScenarios, RULE_FILES, renderScenario } from './scenario.js';

const scenarios = listScenarios();
// IPVS-only scenarios (fixtures/ipvs-*) carry only ipvs.rules / ip6vs.rules.
const hasIpvsGolden = (dir: string) => ['ipvs.rules', 'ip6vs.rules'].some((f) => existsSync(join(dir, f)));

describe('golden scenarios', () => {
  it('has at least 20 scenarios, each with an expected rule file', () => {
    expect(scenarios.length).toBeGreaterThanOrEqual(20);
    for (const s of scenarios) expect(s.families.length > 0 || hasIpvsGolden(s.dir), s.name).toBe(true);
  });

  for (const s of scenarios) {
    for (const family of s.families) {
      it(`${s.name} (${family}) renders exactly ${RULE_FILES[family]}`, () => {
        const expected = readFileSync(join(s.dir, RULE_FILES[family]), 'utf8');
        const { render } = renderScenario(s, family);
        expect(render.text).toBe(expected);
        // The renderer's layout is kube-proxy's test normalisation (spec §18).
        expect(normalizeRestore(render.text)).toBe(render.text);
      });
    }
  }
});
