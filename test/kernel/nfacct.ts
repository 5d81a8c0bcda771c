/**
 * nfacct in kernel tests: `-m nfacct --nfacct-name X` only applies once counter X exists in
 * the namespace, and creating it needs the `nfacct` tool, which a host may lack.
 */
import { execFileSync } from 'node:child_process';

const NFACCT_MATCH = / -m nfacct --nfacct-name (\S+)/g;

/** Whether the `nfacct` tool is installed (to create counters with `nfacct add`). */
export const nfacctTool: boolean = (() => {
  try {
    execFileSync('nfacct', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** The counters restore input (or saved rules) name, each once, sorted. */
export function nfacctCounters(text: string): string[] {
  return [...new Set([...text.matchAll(NFACCT_MATCH)].map((m) => m[1]!))].sort();
}

/** The text with every nfacct match removed. */
export function withoutNfacct(text: string): string {
  return text.replace(NFACCT_MATCH, '');
}
