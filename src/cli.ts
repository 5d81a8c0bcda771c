#!/usr/bin/env node
/**
 * switchboard: a kube-proxy compatible service proxy. Commands: render (dry-run), run.
 */
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { createIptablesBackends } from './backends/iptables/backend.js';
import { cleanupIptables } from './backends/iptables/cleanup.js';
import { type HostFacts, loadHostFacts, neutralHostFacts } from './config/host.js';
import {
  defaultKubeProxyConfiguration,
  type KubeProxyConfiguration,
  loadKubeProxyConfiguration,
} from './config/kubeproxy.js';
import { formatProblem, InputError } from './errors.js';
import { Conntrack } from './kernel/conntrack.js';
import { ExecaRunner } from './kernel/exec.js';
import { createLogger, type Logger } from './log.js';
import type { IPFamily } from './model/ip.js';
import type { ObjectStore } from './model/store.js';
import { startProxyServers } from './server/proxy-servers.js';
import { ClusterSource } from './sources/cluster.js';
import { ManifestSource } from './sources/manifest-source.js';
import { readManifests } from './sources/manifests.js';
import type { ObjectSource } from './sync/backend.js';
import { ConntrackCleaner, ConntrackCleaningBackend } from './sync/conntrack-cleanup.js';
import { renderStore, storeFrom } from './sync/render-once.js';
import {
  type BackendFactory,
  dryRunBackends,
  type ProxyOptions,
  runProxyOnce,
  startProxy,
} from './sync/run.js';
import { iptablesOptions, resolveNodeName } from './sync/wiring.js';

/** A command that ran but did not succeed: main logs the message and exits with the code. */
class CommandFailed extends Error {
  override readonly name = 'CommandFailed';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new InputError(
      `${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
}

export async function loadConfig(path: string | undefined, log: Logger): Promise<KubeProxyConfiguration> {
  if (!path) return defaultKubeProxyConfiguration();
  const { config, warnings } = loadKubeProxyConfiguration(await readText(path), path);
  for (const w of warnings) log.warn(w);
  if (config.mode === 'ipvs')
    throw new InputError(`${path}: mode: ipvs is not implemented yet; use iptables`);
  return config;
}

export async function loadHost(path: string | undefined): Promise<HostFacts> {
  return path ? loadHostFacts(await readText(path), path) : neutralHostFacts();
}

function parseFamily(value: string): IPFamily {
  const v = value.toLowerCase();
  if (v === 'ipv4' || v === '4') return 'IPv4';
  if (v === 'ipv6' || v === '6') return 'IPv6';
  throw new InvalidArgumentError('must be ipv4 or ipv6');
}

const collect = (value: string, previous: string[]) => [...previous, value];

function parseFamilies(value: string): IPFamily[] {
  const v = value.toLowerCase();
  if (v === 'dual') return ['IPv4', 'IPv6'];
  try {
    return [parseFamily(v)];
  } catch {
    throw new InvalidArgumentError('must be ipv4, ipv6 or dual');
  }
}

interface RenderOptions {
  from: string[];
  config?: string;
  host?: string;
  family: IPFamily;
  mode: string;
}

/**
 * The store of the --from manifests. The parsed objects are dropped on return, so a large
 * dump's raw objects can be collected before the render needs the memory.
 */
async function manifestStore(paths: string[], nodeName: string, log: Logger): Promise<ObjectStore> {
  const { events, notices } = await readManifests(paths);
  for (const n of notices) log.info(n);
  return storeFrom(events, nodeName);
}

async function renderCommand(opts: RenderOptions, log: Logger): Promise<void> {
  const config = await loadConfig(opts.config, log);
  const host = await loadHost(opts.host);
  const store = await manifestStore(opts.from, resolveNodeName(config, host), log);
  const result = renderStore({ store, config, host, family: opts.family });
  for (const p of result.problems)
    log.warn({ object: p.ref, field: p.field }, `skipped: ${formatProblem(p)}`);
  if (!result.nodeFound)
    log.warn(
      `no Node object named ${JSON.stringify(result.nodeName)}: no topology labels or node IPs from it`,
    );
  process.stdout.write(result.render.text);
  const s = result.render.stats;
  log.info(
    {
      family: opts.family,
      servicePorts: s.servicePorts,
      endpoints: s.endpoints,
      skipped: result.problems.length,
    },
    'rendered',
  );
}

interface RunOptions {
  from: string[];
  config?: string;
  host?: string;
  family: IPFamily[];
  once?: boolean;
  dryRun?: boolean;
  hostnameOverride?: string;
  healthzBindAddress?: string;
  metricsBindAddress?: string;
  kubeconfig?: string;
}

/**
 * The real backends: (ip6)tables on this machine, host facts from --host or probed, each
 * followed by the cleanup of stale UDP conntrack entries after its successful syncs.
 */
function iptablesBackends(hostFromFile: boolean): BackendFactory {
  return async ({ families, config, host, log }) => {
    const runner = new ExecaRunner();
    const backends = await createIptablesBackends({
      runner,
      families,
      options: (facts) => iptablesOptions(config, facts),
      ...(hostFromFile ? { hostFacts: host } : {}),
      log,
    });
    const conntrack = new Conntrack(runner);
    return backends.map(
      (b) => new ConntrackCleaningBackend(b, new ConntrackCleaner({ family: b.family, conntrack, log })),
    );
  };
}

/** Resolves on the first SIGTERM or SIGINT (registered before startup, so an early signal is not lost). */
function nextStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

const STOP_GRACE_MS = 10_000;

/** Manifests when --from is given, else the API server (--kubeconfig, clientConnection.kubeconfig, in-cluster). */
async function objectSource(
  opts: RunOptions,
  config: KubeProxyConfiguration,
  host: HostFacts,
  log: Logger,
): Promise<ObjectSource> {
  if (opts.from.length > 0) {
    if (opts.kubeconfig) throw new InputError('--from and --kubeconfig exclude each other');
    return new ManifestSource(opts.from, { log, watch: !opts.once });
  }
  // Loaded here, not at start-up: @kubernetes/client-node costs ~0.6 s and ~70 MiB to import,
  // which `render` and `run --from` do not need.
  const { loadKubeConfig } = await import('./sources/kubeconfig.js');
  const { kubeConfig, origin, notices } = loadKubeConfig({
    kubeconfigFlag: opts.kubeconfig,
    clientConnection: config.clientConnection,
  });
  for (const n of notices) log.info(n);
  log.info({ kubeconfig: origin }, 'watching the API server');
  return new ClusterSource({ nodeName: resolveNodeName(config, host), log, kubeConfig });
}

async function runCommand(opts: RunOptions, log: Logger): Promise<void> {
  let config = await loadConfig(opts.config, log);
  let host = await loadHost(opts.host);
  if (opts.hostnameOverride) {
    config = { ...config, hostnameOverride: opts.hostnameOverride };
    host = { ...host, nodeName: opts.hostnameOverride };
  }
  const createBackends = opts.dryRun
    ? dryRunBackends(process.stdout)
    : iptablesBackends(opts.host !== undefined);
  const source = await objectSource(opts, config, host, log);
  const proxyOptions: ProxyOptions = { config, host, families: opts.family, source, createBackends, log };

  if (opts.once) {
    const report = await runProxyOnce(proxyOptions);
    if (!report.ok) throw new CommandFailed(`sync failed: ${report.error?.message ?? 'unknown error'}`, 1);
    return;
  }

  const stopSignal = nextStopSignal();
  const servers = await startProxyServers({
    config,
    families: opts.family,
    nodeName: resolveNodeName(config, host),
    healthzBindAddress: opts.healthzBindAddress ?? config.healthzBindAddress,
    metricsBindAddress: opts.metricsBindAddress ?? config.metricsBindAddress,
    serviceHealthChecks: !opts.dryRun,
    log,
  });
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  try {
    proxy = await startProxy({
      ...proxyOptions,
      observers: servers.observers,
      onObjectEvent: (event) => servers.onObjectEvent(event),
    });
  } catch (e) {
    await servers.close();
    throw e;
  }
  const signal = await stopSignal;
  log.info({ signal }, 'stopping; the rules stay in place');
  // A sync stuck in the kernel must not keep the pod from terminating.
  const force = setTimeout(() => {
    log.warn(`still stopping after ${STOP_GRACE_MS} ms; exiting anyway`);
    process.exit(0);
  }, STOP_GRACE_MS);
  force.unref();
  await proxy.stop();
  await servers.close();
  clearTimeout(force);
  log.info('stopped');
}

async function cleanupCommand(log: Logger): Promise<void> {
  const { removed } = await cleanupIptables(new ExecaRunner(), log);
  log.info({ removed }, removed === 0 ? 'nothing to clean up' : 'cleaned up');
}

export function buildProgram(log: Logger): Command {
  const program = new Command('switchboard')
    .description('A kube-proxy compatible Kubernetes service proxy (iptables mode)')
    .showHelpAfterError();

  program
    .command('render')
    .description('print the iptables-restore input for the given manifests (a dry run: nothing is applied)')
    .requiredOption(
      '--from <path>',
      'manifest file or directory, YAML or JSON (repeatable; - reads standard input)',
      collect,
      [],
    )
    .option('--config <file>', 'KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1)')
    .option('--host <file>', 'HostFacts file: node name, interfaces, iptables features')
    .option('--family <family>', 'ipv4 or ipv6', parseFamily, 'IPv4' as IPFamily)
    .addOption(new Option('--mode <mode>', 'proxy mode').choices(['iptables']).default('iptables'))
    .action((opts: RenderOptions) => renderCommand(opts, log));

  program
    .command('run')
    .description('run the proxy: watch the API server (or the --from manifests) and keep the rules in sync')
    .option(
      '--from <path>',
      'read manifests instead of the API server (repeatable; re-read on change; - reads standard input, with --once)',
      collect,
      [],
    )
    .option(
      '--kubeconfig <file>',
      'kubeconfig for the API server (default: clientConnection.kubeconfig, else in-cluster)',
    )
    .option('--config <file>', 'KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1)')
    .option('--host <file>', 'HostFacts file: node name, interfaces, iptables features')
    .addOption(
      new Option('--family <family>', 'ipv4, ipv6 or dual (one backend per family)')
        .argParser(parseFamilies)
        .default(['IPv4', 'IPv6'] as IPFamily[], 'dual'),
    )
    .option('--once', 'sync once and exit: 0 on success, 1 on failure')
    .option('--dry-run', "print each sync's iptables-restore input on stdout instead of applying it")
    .option('--hostname-override <name>', 'the node name (overrides the configuration and host facts)')
    .option(
      '--healthz-bind-address <ip:port>',
      'serve /healthz and /livez here (default: the configuration, 0.0.0.0:10256); empty disables',
    )
    .option(
      '--metrics-bind-address <ip:port>',
      'serve /metrics here (default: the configuration, 127.0.0.1:10249); empty disables',
    )
    .action((opts: RunOptions) => runCommand(opts, log));

  program
    .command('cleanup')
    .description(
      'remove every chain and rule Switchboard or kube-proxy (iptables mode) created, both families, both iptables backends',
    )
    .action(() => cleanupCommand(log));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const log = createLogger();
  try {
    await buildProgram(log).parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommandFailed) {
      log.error(e.message);
      process.stderr.write(`switchboard: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof InputError) {
      log.error(e.message);
      process.stderr.write(`switchboard: ${e.message}\n`);
      return 2;
    }
    log.fatal({ err: e }, 'unexpected error');
    return 1;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
