// Runs the real helm binary (installed by scripts/fetch-helm.sh) against charts/switchboard and parses
// what it renders. Shared by the chart tests; no test logic here.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parseAllDocuments } from 'yaml';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const chartDir = path.join(repoRoot, 'charts', 'switchboard');
export const helmBin = process.env['HELM'] ?? path.join(repoRoot, '.cache', 'bin', 'helm');

export interface HelmResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** Why helm cannot be used, or undefined when `helm version` works. */
export async function helmProblem(): Promise<string | undefined> {
  const result = await execa(helmBin, ['version', '--short'], { reject: false, timeout: 30_000 });
  if (result.failed) return result.shortMessage;
  return undefined;
}

export async function helm(args: readonly string[]): Promise<HelmResult> {
  const result = await execa(helmBin, args, { reject: false, cwd: repoRoot, timeout: 60_000 });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** `helm lint --strict` of the chart with extra `--set`-style arguments. */
export function lintChart(valueArgs: readonly string[] = []): Promise<HelmResult> {
  return helm(['lint', '--strict', chartDir, ...valueArgs]);
}

/** `helm template` of the chart as release "sb" in kube-system. */
export function templateChart(valueArgs: readonly string[] = []): Promise<HelmResult> {
  return helm(['template', 'sb', chartDir, '--namespace', 'kube-system', ...valueArgs]);
}

/** Renders the chart and returns its objects; throws with helm's stderr when rendering fails. */
export async function renderChart(valueArgs: readonly string[] = []): Promise<K8sObject[]> {
  const result = await templateChart(valueArgs);
  if (result.exitCode !== 0) {
    throw new Error(
      `helm template ${valueArgs.join(' ')} failed (exit ${result.exitCode}):\n${result.stderr}`,
    );
  }
  return parseManifests(result.stdout);
}

export function parseManifests(text: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`helm output is not valid YAML: ${doc.errors[0]?.message}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) objects.push(value as K8sObject);
  }
  return objects;
}

/** The single object of a kind; fails loudly when there is none or more than one. */
export function onlyOne<T extends K8sObject = K8sObject>(objects: readonly K8sObject[], kind: string): T {
  const matches = objects.filter((object) => object.kind === kind);
  if (matches.length !== 1) {
    throw new Error(`expected exactly one ${kind}, found ${matches.length}`);
  }
  return matches[0] as T;
}
