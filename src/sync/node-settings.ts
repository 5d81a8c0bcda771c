/**
 * What kube-proxy changes on the node at start, before its first sync: the conntrack tuning
 * of the configuration's `conntrack` section and the process's own OOM score. Not done in
 * dry-run, which never touches the kernel.
 */
import type { KubeProxyConfiguration } from '../config/kubeproxy.js';
import { applyConntrackSettings } from '../kernel/conntrack-settings.js';
import { applyOomScoreAdj } from '../kernel/oom-score.js';
import type { ProcFiles } from '../kernel/proc-files.js';
import type { Logger } from '../log.js';

export async function applyNodeSettings(
  config: Pick<KubeProxyConfiguration, 'conntrack' | 'oomScoreAdj'>,
  files: ProcFiles,
  log: Logger,
): Promise<void> {
  await applyConntrackSettings(config.conntrack, files, log);
  await applyOomScoreAdj(config.oomScoreAdj, files, log);
}
