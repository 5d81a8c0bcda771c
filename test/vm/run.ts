/**
 * Debugging entry point: boots the VM guest and runs one command in it, streaming its output.
 *
 *   npx tsx test/vm/run.ts [--build] [--console] [--timeout SECONDS] [--share DIR]... -- COMMAND [ARG...]
 *
 * --build bundles the guest code into dist/vm/ first (as the VM test does), --console shows the
 * guest's console (kernel warnings, boot stages), --share mounts a host directory read-write.
 * e.g. `npx tsx test/vm/run.ts -- ipvsadm -Ln`, a shell for several commands:
 * `npx tsx test/vm/run.ts -- sh -c 'ip link add kube-ipvs0 type dummy && ip -d link show kube-ipvs0'`,
 * or some guest checks: `npx tsx test/vm/run.ts --build -- node dist/vm/test/vm/guest/main.js ipvs-traffic`.
 * Exits with the command's exit code. Timings go to stderr.
 */
import { parseArgs } from 'node:util';
import { buildGuestBundle } from './guest-checks.js';
import { findCachedKernel } from './kernel.js';
import { GuestRunError, runInGuest, stopAllGuests } from './runner.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    build: { type: 'boolean', default: false },
    console: { type: 'boolean', default: false },
    timeout: { type: 'string', default: '600' },
    share: { type: 'string', multiple: true, default: [] },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help || positionals.length === 0) {
  process.stderr.write(
    'usage: npx tsx test/vm/run.ts [--build] [--console] [--timeout SECONDS] [--share DIR]... -- COMMAND [ARG...]\n',
  );
  process.exit(positionals.length === 0 && !values.help ? 2 : 0);
}

const found = findCachedKernel();
if (!found.ok) {
  process.stderr.write(`${found.reason}; fetch it with: bash scripts/vm/fetch-kernel.sh\n`);
  process.exit(2);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    stopAllGuests();
    process.exit(130);
  });
}
if (values.build) await buildGuestBundle();
try {
  const r = await runInGuest({
    command: positionals,
    timeoutMs: Number(values.timeout) * 1000,
    shares: values.share,
    env: process.env['CI'] ? { CI: process.env['CI'] } : {},
    onStdout: (c) => process.stdout.write(c),
    onStderr: (c) => process.stderr.write(c),
    onConsole: values.console ? (c) => process.stderr.write(c) : undefined,
  });
  process.stderr.write(
    `[vm] kernel ${found.kernel.release}: boot ${r.bootMs} ms, command ${r.runMs} ms, exit code ${r.exitCode}\n`,
  );
  process.exit(r.exitCode);
} catch (e) {
  if (e instanceof GuestRunError) {
    process.stderr.write(`[vm] ${e.message}\n`);
    process.exit(3);
  }
  throw e;
}
