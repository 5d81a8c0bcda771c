/**
 * A synthetic cluster written the way kubectl prints it, for the manifest loading benchmark:
 * `kubectl get svc,endpointslices,nodes -A -o json` (one `List`, 4-space indentation) and
 * `-o yaml` (the same `List` as YAML: keys sorted and sequences not indented under their
 * key, as kubectl's JSON-to-YAML conversion prints them). The objects are the synthetic
 * ones, so rendering a dump gives exactly the render benchmark's rules.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import type { SyntheticCluster } from './synthetic-cluster.js';

/** The objects of the cluster as one kubectl `List`. */
export function kubectlList(cluster: SyntheticCluster): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    items: [...cluster.services, ...cluster.slices, cluster.node],
    kind: 'List',
    metadata: { resourceVersion: '' },
  };
}

export interface ManifestDumps {
  json: string;
  yaml: string;
  /** sizes in bytes */
  jsonBytes: number;
  yamlBytes: number;
}

/** Writes `cluster.json` and `cluster.yaml` into `dir`. */
export function writeManifestDumps(cluster: SyntheticCluster, dir: string): ManifestDumps {
  const list = kubectlList(cluster);
  const jsonText = `${JSON.stringify(list, null, 4)}\n`;
  const yamlText = dump(list, { sortKeys: true, lineWidth: -1, noRefs: true, noArrayIndent: true });
  const json = join(dir, 'cluster.json');
  const yaml = join(dir, 'cluster.yaml');
  writeFileSync(json, jsonText);
  writeFileSync(yaml, yamlText);
  return { json, yaml, jsonBytes: Buffer.byteLength(jsonText), yamlBytes: Buffer.byteLength(yamlText) };
}
