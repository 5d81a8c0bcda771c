/**
 * A golden scenario (fixtures/<name>/): its inputs, and the expected files per mode and
 * family. A scenario is rendered in iptables mode for each iptables file it has and in
 * IPVS mode (whatever its configuration's mode) for each IPVS file it has.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FULL_SYNC, type SyncScope } from '../../src/backends/iptables/render.js';
import type { IpvsRender } from '../../src/backends/ipvs/render.js';
import { type HostFacts, loadHostFacts, neutralHostFacts } from '../../src/config/host.js';
import {
  defaultKubeProxyConfiguration,
  type KubeProxyConfiguration,
  loadKubeProxyConfiguration,
} from '../../src/config/kubeproxy.js';
import { parseYamlDocument, parseYamlDocuments } from '../../src/config/yaml.js';
import type { IPFamily } from '../../src/model/ip.js';
import type { ObjectEvent } from '../../src/model/store.js';
import { objectsFromDocuments } from '../../src/sources/manifests.js';
import { type RenderOnceResult, renderIpvsOnce, renderOnce } from '../../src/sync/render-once.js';

export const FIXTURES = new URL('../../fixtures/', import.meta.url).pathname;

export const RULE_FILES: Record<IPFamily, string> = { IPv4: 'iptables.rules', IPv6: 'ip6tables.rules' };
export const IPVS_RULE_FILES: Record<IPFamily, string> = { IPv4: 'ipvs.rules', IPv6: 'ip6vs.rules' };

export interface Scenario {
  name: string;
  dir: string;
  /** the families with an iptables file */
  families: IPFamily[];
  /** the families with an IPVS file */
  ipvsFamilies: IPFamily[];
}

export function listScenarios(): Scenario[] {
  return readdirSync(FIXTURES, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(FIXTURES, d.name, 'cluster.yaml')))
    .map((d) => {
      const dir = join(FIXTURES, d.name);
      const present = (files: Record<IPFamily, string>) =>
        (Object.keys(files) as IPFamily[]).filter((f) => existsSync(join(dir, files[f])));
      return { name: d.name, dir, families: present(RULE_FILES), ipvsFamilies: present(IPVS_RULE_FILES) };
    })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

function readOptional(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

function loadScope(dir: string): SyncScope {
  const path = join(dir, 'sync.yaml');
  const text = readOptional(path);
  if (text === null) return FULL_SYNC;
  const raw = parseYamlDocument(text, path) as {
    full?: boolean;
    changedServices?: string[];
    existingChains?: string[];
  };
  return {
    full: raw.full ?? true,
    changedServices: new Set(raw.changedServices ?? []),
    existingChains: new Set(raw.existingChains ?? []),
  };
}

export interface ScenarioInputs {
  events: ObjectEvent[];
  config: KubeProxyConfiguration;
  host: HostFacts;
  /** iptables mode only: IPVS renders are always the whole desired state */
  scope: SyncScope;
}

/** What a scenario renders from in `mode`: its objects, configuration, host facts and sync scope. */
export function scenarioInputs(s: Scenario, mode: 'iptables' | 'ipvs' = 'iptables'): ScenarioInputs {
  const clusterPath = join(s.dir, 'cluster.yaml');
  const { events } = objectsFromDocuments(
    parseYamlDocuments(readFileSync(clusterPath, 'utf8'), clusterPath),
    clusterPath,
  );
  const configPath = join(s.dir, 'config.yaml');
  const configText = readOptional(configPath);
  // iptables files follow the configuration's mode; IPVS files are IPVS mode whatever it says.
  const override = mode === 'ipvs' ? { mode } : {};
  const config: KubeProxyConfiguration =
    configText === null
      ? defaultKubeProxyConfiguration(override.mode)
      : loadKubeProxyConfiguration(configText, configPath, override).config;
  const hostPath = join(s.dir, 'host.yaml');
  const hostText = readOptional(hostPath);
  const host: HostFacts = hostText === null ? neutralHostFacts() : loadHostFacts(hostText, hostPath);
  return { events, config, host, scope: loadScope(s.dir) };
}

export function renderScenario(s: Scenario, family: IPFamily): RenderOnceResult {
  return renderOnce({ ...scenarioInputs(s), family });
}

/** IPVS mode: the whole desired state (a scenario's sync.yaml, a partial-sync scope, does not apply). */
export function renderIpvsScenario(s: Scenario, family: IPFamily): RenderOnceResult<IpvsRender> {
  const { scope: _partialScope, ...inputs } = scenarioInputs(s, 'ipvs');
  return renderIpvsOnce({ ...inputs, family });
}
