import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatRestore, normalizeRestore, parseRestore } from '../../src/backends/iptables/restore-text.js';
import { formatIptablesSection, formatIpvsState } from '../../src/backends/ipvs/format.js';
import {
  IPVS_RULE_FILES,
  listScenarios,
  RULE_FILES,
  renderIpvsScenario,
  renderScenario,
} from './scenario.js';

const scenarios = listScenarios();

describe('golden scenarios', () => {
  it('has at least 20 scenarios, each with an expected rule file (iptables or IPVS)', () => {
    expect(scenarios.length).toBeGreaterThanOrEqual(20);
    for (const s of scenarios) expect(s.families.length + s.ipvsFamilies.length, s.name).toBeGreaterThan(0);
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
    for (const family of s.ipvsFamilies) {
      it(`${s.name} (${family}, IPVS) renders exactly ${IPVS_RULE_FILES[family]}`, () => {
        const expected = readFileSync(join(s.dir, IPVS_RULE_FILES[family]), 'utf8');
        const { render } = renderIpvsScenario(s, family);
        expect(formatIpvsState(render)).toBe(expected);
        // The iptables section is laid out as formatRestore lays out any restore input.
        const iptables = formatIptablesSection(render);
        expect(formatRestore(parseRestore(iptables))).toBe(iptables);
      });
    }
  }
});
