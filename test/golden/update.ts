/**
 * npm run golden:update — rewrites every scenario's expected rule files from the
 * renderer. Review the diff (git diff fixtures/) like code before committing it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listScenarios, RULE_FILES, renderScenario } from './scenario.js';

let changed = 0;
for (const s of listScenarios()) {
  for (const family of s.families) {
    const path = join(s.dir, RULE_FILES[family]);
    const text = renderScenario(s, family).render.text;
    if (readFileSync(path, 'utf8') !== text) {
      writeFileSync(path, text);
      changed++;
      console.log(`updated ${path}`);
    }
  }
}
console.log(
  changed === 0
    ? 'all golden files up to date'
    : `${changed} file(s) updated: review with git diff fixtures/`,
);
