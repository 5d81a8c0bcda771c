#!/usr/bin/env node
/**
 * switchboard: a kube-proxy compatible service proxy (iptables or IPVS mode).
 * Commands: render (dry-run), run, cleanup.
 */
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { createIptablesBackends } from './backends/iptables/backend.js';
import { cleanupIptables } from './backends/iptables/cleanup.js';
import { restorePieces } from './backends/iptables/restore-text.js';
import type { IpvsBackend } from './backends/ipvs/backend.js';
import { desiredIpvsState } from './backends/ipvs/desired.js';
import { formatIpvsState, formatSection, IPVS_SECTIONS, type IpvsSection } from './backends/ipvs/format.js';
import { GRACEFUL_CHECK_PERIOD_MS } from './backends/ipvs/graceful.js';
import { removeIpvsLeftovers, removeIpvsState } from './backends/ipvs/leftovers.js';
import {
  createIpvsBackends,
  GRACEFUL_CHECK_PERIOD_ENV,
  gracefulCheckPeriodFromEnv,
  IpvsUnsupportedError,
} from './backends/ipvs/setup.js';
import { type HostFacts, loadHostFacts, neutralHostFacts } from './config/host.js';
import {
  defaultKubeProxyConfiguration,
  type KubeProxyConfiguration,
  loadKubeProxyConfiguration,
  type ProxyMode,
} from './config/kubeproxy.js';
import { formatProblem, InputError } from './errors.js';
import { Conntrack } from './kernel/conntrack.js';
import { type CommandRunner, chunksOf, ExecaRunner } from './kernel/exec.js';
import { HostProcFiles } from './kernel/proc-files.js';
import { createLogger, LOG_FORMATS, type LogFormat, type Logger } from './log.js';
import type { IPFamily } from './model/ip.js';
import type { ObjectStore } from './model/store.js';
import { startProxyServers } from './server/proxy-servers.js';
import { ClusterSource } from './sources/cluster.js';
import { ManifestSource } from './sources/manifest-source.js';
import { readManifests } from './sources/manifests.js';
import { checkServiceAddress } from './sources/service-address.js';
import { listenForStop } from './stop-signal.js';
import type { ObjectSource, ProxyBackend } from './sync/backend.js';
import { ConntrackCleaner, ConntrackCleaningBackend } from './sync/conntrack-cleanup.js';
import { applyNodeSettings } from './sync/node-settings.js';
import { renderIpvsStore, renderStore, storeFrom } from './sync/render-once.js';
import {
  type BackendFactory,
  dryRunBackends,
  type ProxyOptions,
  runProxyOnce,
  startProxy,
} from './sync/run.js';
import { iptablesOptions, ipvsOptions, resolveNodeName } from './sync/wiring.js';

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

/** The configuration file (or kube-proxy's defaults); `mode` (from `--mode`) overrides the file's. */
export async function loadConfig(
  path: string | undefined,
  log: Logger,
  mode?: ProxyMode,
): Promise<KubeProxyConfiguration> {
  if (!path) return defaultKubeProxyConfiguration(mode);
  const { config, warnings } = loadKubeProxyConfiguration(await readText(path), path, mode ? { mode } : {});
  for (const w of warnings) log.warn(w);
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

const PROXY_MODES: readonly ProxyMode[] = ['iptables', 'ipvs'];

interface RenderOptions {
  from: string[];
  config?: string;
  host?: string;
  family: IPFamily;
  mode?: ProxyMode;
  section?: IpvsSection;
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
  const config = await loadConfig(opts.config, log, opts.mode);
  if (opts.section && config.mode !== 'ipvs') {
    throw new InputError(
      `--section ${opts.section}: sections exist in IPVS mode only (use --mode ipvs, or mode: ipvs in the configuration)`,
    );
  }
  const host = await loadHost(opts.host);
  const store = await manifestStore(opts.from, resolveNodeName(config, host), log);
  const input = { store, config, host, family: opts.family };
  let text: string | readonly string[];
  let figures: Record<string, number>;
  let result: ReturnType<typeof renderStore> | ReturnType<typeof renderIpvsStore>;
  if (config.mode === 'ipvs') {
    const ipvs = renderIpvsStore(input);
    result = ipvs;
    text = opts.section ? formatSection(ipvs.render, opts.section) : formatIpvsState(ipvs.render);
    const s = ipvs.render.stats;
    figures = {
      servicePorts: s.servicePorts,
      endpoints: s.endpoints,
      virtualServers: s.virtualServers,
      realServers: s.realServers,
      boundAddresses: s.boundAddresses,
    };
  } else {
    const iptables = renderStore(input);
    result = iptables;
    // Written in chunks: at 10,000 services the restore input is 37 MB as one string.
    const { render } = iptables;
    text = restorePieces([render.filter, render.nat], render.ruleTexts);
    figures = {
      servicePorts: iptables.render.stats.servicePorts,
      endpoints: iptables.render.stats.endpoints,
    };
  }
  for (const p of result.problems)
    log.warn({ object: p.ref, field: p.field }, `skipped: ${formatProblem(p)}`);
  if (!result.nodeFound)
    log.warn(
      `no Node object named ${JSON.stringify(result.nodeName)}: no topology labels or node IPs from it`,
    );
  // stdout to a file or pipe is written synchronously on Linux: nothing piles up.
  for (const chunk of typeof text === 'string' ? [text] : chunksOf(text)) process.stdout.write(chunk);
  log.info(
    { family: opts.family, mode: config.mode, ...figures, skipped: result.problems.length },
    'rendered',
  );
}

interface RunOptions {
  from: string[];
  config?: string;
  host?: string;
  mode?: ProxyMode;
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
      // A node that ran IPVS mode: its state goes once iptables mode's rules are in place.
      afterFirstFullSync: async (family, iptables, kernelBefore) => {
        // Virtual servers that still carry connections go once those are gone (their check period).
        const drain = { periodMs: gracefulCheckPeriodFromEnv(process.env) ?? GRACEFUL_CHECK_PERIOD_MS };
        await removeIpvsLeftovers({
          runner,
          iptables,
          family,
          kernelBefore,
          excludeCIDRs: config.ipvs.excludeCIDRs,
          log,
          drain,
        });
      },
      log,
    });
    await applyNodeSettings(config, new HostProcFiles(), log);
    return withConntrackCleanup(backends, runner, log);
  };
}

/** IPVS mode's backends: the kernel checked and tuned, then one diff-based applier per family. */
function ipvsBackends(hostFromFile: boolean): BackendFactory {
  return async ({ families, config, host, log }) => {
    const runner = new ExecaRunner();
    const gracefulCheckPeriodMs = gracefulCheckPeriodFromEnv(process.env);
    if (gracefulCheckPeriodMs !== undefined)
      log.info(
        { gracefulCheckPeriodMs },
        `graceful termination check period from ${GRACEFUL_CHECK_PERIOD_ENV}`,
      );
    let backends: IpvsBackend[];
    try {
      backends = await createIpvsBackends({
        runner,
        families,
        config,
        desired: (family, facts) => desiredIpvsState(ipvsOptions(config, facts), family, log),
        ...(hostFromFile ? { hostFacts: host } : {}),
        ...(gracefulCheckPeriodMs !== undefined ? { gracefulCheckPeriodMs } : {}),
        log,
      });
    } catch (e) {
      // Not a crash: the node cannot do what the configuration asks (see setup.ts).
      if (e instanceof IpvsUnsupportedError) throw new CommandFailed(e.message, 1);
      throw e;
    }
    await applyNodeSettings(config, new HostProcFiles(), log);
    return withConntrackCleanup(backends, runner, log);
  };
}

/** Each backend followed by the cleanup of stale UDP conntrack entries after its successful syncs. */
function withConntrackCleanup(
  backends: readonly ProxyBackend[],
  runner: CommandRunner,
  log: Logger,
): ProxyBackend[] {
  const conntrack = new Conntrack(runner);
  return backends.map(
    (b) => new ConntrackCleaningBackend(b, new ConntrackCleaner({ family: b.family, conntrack, log })),
  );
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
  const { kubeConfig, origin, server, notices } = loadKubeConfig({
    kubeconfigFlag: opts.kubeconfig,
    clientConnection: config.clientConnection,
  });
  for (const n of notices) log.info(n);
  log.info({ kubeconfig: origin, server }, 'watching the API server');
  // The kubernetes Service's ClusterIP cannot work before this proxy's own rules: say so once.
  void checkServiceAddress({ server, env: process.env, log });
  return new ClusterSource({ nodeName: resolveNodeName(config, host), log, kubeConfig });
}

async function runCommand(opts: RunOptions, log: Logger): Promise<void> {
  let config = await loadConfig(opts.config, log, opts.mode);
  let host = await loadHost(opts.host);
  if (opts.hostnameOverride) {
    config = { ...config, hostnameOverride: opts.hostnameOverride };
    host = { ...host, nodeName: opts.hostnameOverride };
  }
  const createBackends = opts.dryRun
    ? dryRunBackends(process.stdout)
    : config.mode === 'ipvs'
      ? ipvsBackends(opts.host !== undefined)
      : iptablesBackends(opts.host !== undefined);
  const source = await objectSource(opts, config, host, log);
  const proxyOptions: ProxyOptions = { config, host, families: opts.family, source, createBackends, log };

  if (opts.once) {
    const report = await runProxyOnce(proxyOptions);
    if (!report.ok) throw new CommandFailed(`sync failed: ${report.error?.message ?? 'unknown error'}`, 1);
    return;
  }

  const stopSignal = listenForStop();
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
  const signal = await stopSignal.received;
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

/**
 * Both modes' iptables state first (so no rule uses a set any more), then IPVS mode's:
 * both families' sets, virtual servers outside ipvs.excludeCIDRs (from --config), kube-ipvs0.
 */
async function cleanupCommand(opts: { config?: string }, log: Logger): Promise<void> {
  const runner = new ExecaRunner();
  let excludeCIDRs: string[] = [];
  if (opts.config) {
    // Read directly rather than through loadConfig: any mode's file gives ipvs.excludeCIDRs.
    const { config, warnings } = loadKubeProxyConfiguration(await readText(opts.config), opts.config);
    for (const w of warnings) log.warn(w);
    excludeCIDRs = config.ipvs.excludeCIDRs;
  }
  const { removed } = await cleanupIptables(runner, log);
  const { problems, ...ipvs } = await removeIpvsState({
    runner,
    families: ['IPv4', 'IPv6'],
    excludeCIDRs,
    log,
  });
  const total = removed + ipvs.sets + ipvs.virtualServers + ipvs.addresses + (ipvs.linkRemoved ? 1 : 0);
  log.info({ removed, ipvs }, total === 0 ? 'nothing to clean up' : 'cleaned up');
  if (problems.length > 0) throw new CommandFailed(`IPVS cleanup incomplete:\n${problems.join('\n')}`, 1);
}

/**
 * The command line. `logger()` gives the logger of this invocation: it exists once the
 * global options (`--log-format`) have been read, i.e. inside every action.
 */
export function buildProgram(logger: () => Logger): Command {
  const program = new Command('switchboard')
    .description('A kube-proxy compatible Kubernetes service proxy (iptables and IPVS modes)')
    .addOption(
      new Option(
        '--log-format <format>',
        'log lines on stderr: json, or text for people (default: text on a terminal, json otherwise)',
      ).choices(LOG_FORMATS),
    )
    .showHelpAfterError();
  const modeOption = () =>
    new Option(
      '--mode <mode>',
      "proxy mode (default: the configuration's mode, iptables without one)",
    ).choices(PROXY_MODES);

  program
    .command('render')
    .description(
      'print what a sync would apply for the given manifests (a dry run: nothing is applied): the iptables-restore input, or in IPVS mode the ipset, ipvs, kube-ipvs0 and iptables sections',
    )
    .requiredOption(
      '--from <path>',
      'manifest file or directory, YAML or JSON (repeatable; - reads standard input)',
      collect,
      [],
    )
    .option('--config <file>', 'KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1)')
    .option('--host <file>', 'HostFacts file: node name, interfaces, iptables features')
    .option('--family <family>', 'ipv4 or ipv6', parseFamily, 'IPv4' as IPFamily)
    .addOption(modeOption())
    .addOption(
      new Option(
        '--section <section>',
        'IPVS mode: print only this section, without its header (e.g. --section ipset | ipset restore)',
      ).choices(IPVS_SECTIONS),
    )
    .action((opts: RenderOptions) => renderCommand(opts, logger()));

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
    .addOption(modeOption())
    .addOption(
      new Option('--family <family>', 'ipv4, ipv6 or dual (one backend per family)')
        .argParser(parseFamilies)
        .default(['IPv4', 'IPv6'] as IPFamily[], 'dual'),
    )
    .option('--once', 'sync once and exit: 0 on success, 1 on failure')
    .option(
      '--dry-run',
      "print each sync's iptables-restore input (IPVS mode: its four sections) on stdout instead of applying it",
    )
    .option('--hostname-override <name>', 'the node name (overrides the configuration and host facts)')
    .option(
      '--healthz-bind-address <ip:port>',
      'serve /healthz and /livez here (default: the configuration, 0.0.0.0:10256); empty disables',
    )
    .option(
      '--metrics-bind-address <ip:port>',
      'serve /metrics here (default: the configuration, 127.0.0.1:10249); empty disables',
    )
    .action((opts: RunOptions) => runCommand(opts, logger()));

  program
    .command('cleanup')
    .description(
      'remove every chain, rule, ipset, virtual server and kube-ipvs0 address Switchboard or kube-proxy (iptables or IPVS mode) created, both families, both iptables backends; virtual servers inside ipvs.excludeCIDRs stay',
    )
    .option('--config <file>', 'KubeProxyConfiguration file: its ipvs.excludeCIDRs are kept')
    .action((opts: { config?: string }) => cleanupCommand(opts, logger()));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  let log: Logger | null = null;
  const logger = () => {
    log ??= createLogger();
    return log;
  };
  const program = buildProgram(logger);
  program.hook('preAction', () => {
    log = createLogger({ format: program.opts<{ logFormat?: LogFormat }>().logFormat ?? 'auto' });
  });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommandFailed) {
      logger().error(e.message);
      process.stderr.write(`switchboard: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof InputError) {
      logger().error(e.message);
      process.stderr.write(`switchboard: ${e.message}\n`);
      return 2;
    }
    logger().fatal({ err: e }, 'unexpected error');
    return 1;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
