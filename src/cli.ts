#!/usr/bin/env node
/**
 * switchboard: a kube-proxy compatible service proxy. Commands: render (dry-run).
 */
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { type HostFacts, loadHostFacts, neutralHostFacts } from './config/host.js';
import {
  defaultKubeProxyConfiguration,
  type KubeProxyConfiguration,
  loadKubeProxyConfiguration,
} from './config/kubeproxy.js';
import { formatProblem, InputError } from './errors.js';
import { createLogger, type Logger } from './log.js';
import type { IPFamily } from './model/ip.js';
import { readManifests } from './sources/manifests.js';
import { renderOnce } from './sync/render-once.js';

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

interface RenderOptions {
  from: string[];
  config?: string;
  host?: string;
  family: IPFamily;
  mode: string;
}

async function renderCommand(opts: RenderOptions, log: Logger): Promise<void> {
  const config = await loadConfig(opts.config, log);
  const host = await loadHost(opts.host);
  const { events, notices } = await readManifests(opts.from);
  for (const n of notices) log.info(n);
  const result = renderOnce({ events, config, host, family: opts.family });
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

export function buildProgram(log: Logger): Command {
  const program = new Command('switchboard')
    .description('A kube-proxy compatible Kubernetes service proxy (iptables mode)')
    .showHelpAfterError();

  program
    .command('render')
    .description('print the iptables-restore input for the given manifests (a dry run: nothing is applied)')
    .requiredOption('--from <path>', 'manifest file or directory (repeatable)', collect, [])
    .option('--config <file>', 'KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1)')
    .option('--host <file>', 'HostFacts file: node name, interfaces, iptables features')
    .option('--family <family>', 'ipv4 or ipv6', parseFamily, 'IPv4' as IPFamily)
    .addOption(new Option('--mode <mode>', 'proxy mode').choices(['iptables']).default('iptables'))
    .action((opts: RenderOptions) => renderCommand(opts, log));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const log = createLogger();
  try {
    await buildProgram(log).parseAsync(argv);
    return 0;
  } catch (e) {
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
