/**
 * An in-memory `sysctl` (procps): `-n NAME` reads, `-q -w NAME=VALUE` writes. A key that
 * is not in the table behaves as a missing /proc/sys file (`net.ipv4.vs.*` without ip_vs).
 */
import type { RunResult } from '../exec.js';

export class FakeSysctl {
  readonly values = new Map<string, string>();

  constructor(initial: Readonly<Record<string, string>> = {}) {
    for (const [k, v] of Object.entries(initial)) this.values.set(k, v);
  }

  run(args: readonly string[]): RunResult {
    const missing = (name: string): RunResult => ({
      stdout: '',
      stderr: `sysctl: cannot stat /proc/sys/${name.replace(/\./g, '/')}: No such file or directory\n`,
      exitCode: 1,
    });
    const operands = args.filter((a) => !a.startsWith('-'));
    if (args.includes('-w')) {
      for (const op of operands) {
        const eq = op.indexOf('=');
        const name = op.slice(0, eq);
        if (!this.values.has(name)) return missing(name);
        this.values.set(name, op.slice(eq + 1));
      }
      return { stdout: '', stderr: '', exitCode: 0 };
    }
    const out: string[] = [];
    for (const name of operands) {
      const value = this.values.get(name);
      if (value === undefined) return missing(name);
      out.push(args.includes('-n') ? value : `${name} = ${value}`);
    }
    return { stdout: out.map((l) => `${l}\n`).join(''), stderr: '', exitCode: 0 };
  }
}

/** The sysctls of a node with ip_vs loaded, at the kernel's defaults (Debian 12's 6.1). */
export function ipvsNodeSysctls(osrelease = '6.1.0-57-amd64'): Record<string, string> {
  return {
    'kernel.osrelease': osrelease,
    'net.ipv4.ip_forward': '0',
    'net.ipv4.vs.conntrack': '0',
    'net.ipv4.vs.conn_reuse_mode': '1',
    'net.ipv4.vs.expire_nodest_conn': '0',
    'net.ipv4.vs.expire_quiescent_template': '0',
    'net.ipv4.conf.all.arp_ignore': '0',
    'net.ipv4.conf.all.arp_announce': '0',
    'net.ipv4.conf.all.route_localnet': '0',
  };
}
