/**
 * npm run golden:update — rewrites every scenario's expected files from the renderer:
 * iptables.rules / ip6tables.rules, and ipvs.rules / ip6vs.rules where they exist.
 * `npm run golden:update -- --create-ipvs` also creates the missing IPVS files: ipvs.rules
 * for every scenario, ip6vs.rules where the scenario renders IPv6 (has ip6tables.rules).
 * Review the diff (git diff fixtures/) like code before committing it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatIpvsState } from '../../src/backends/ipvs/format.js';
import type { IPFamily } from '../../src/model/ip.js';
import {
  IPVS_RULE_FILES,
  listScenarios,
  RULE_FILES,
  renderIpvsScenario,
  renderScenario,
} from './scenario.js';

const createIpvs = process.argv.includes('--create-ipvs');

let changed = 0;
function write(path: string, text: string): void {
  if (existsSync(path) && readFileSync(path, 'utf8') === text) return;
  console.log(`${existsSync(path) ? 'updated' : 'created'} ${path}`);
  writeFileSync(path, text);
  changed++;
}

for (const s of listScenarios()) {
  for (const family of s.families)
    write(join(s.dir, RULE_FILES[family]), renderScenario(s, family).render.text);
  const ipvsFamilies = new Set<IPFamily>(s.ipvsFamilies);
  if (createIpvs) {
    ipvsFamilies.add('IPv4');
    if (s.families.includes('IPv6')) ipvsFamilies.add('IPv6');
  }
  for (const family of ipvsFamilies) {
    write(join(s.dir, IPVS_RULE_FILES[family]), formatIpvsState(renderIpvsScenario(s, family).render));
  }
}
console.log(
  changed === 0
    ? 'all golden files up to date'
    : `${changed} file(s) written: review with git diff fixtures/`,
);
