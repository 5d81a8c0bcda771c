/**
 * The process's own OOM score adjustment (`oomScoreAdj`, default −999), written to
 * /proc/self/oom_score_adj as kube-proxy's OOM adjuster does, so that under memory pressure
 * the node's OOM killer takes a workload before the service proxy. It concerns this process
 * only (children inherit it), never the namespace or the host.
 *
 * As in kube-proxy, a failure (e.g. lowering the score without CAP_SYS_RESOURCE) is logged
 * and the proxy carries on.
 */
import type { Logger } from '../log.js';
import type { ProcFiles } from './proc-files.js';

export const OWN_OOM_SCORE_ADJ = '/proc/self/oom_score_adj';

/** Sets the score when it differs; returns whether it is now `value`. */
export async function applyOomScoreAdj(value: number, files: ProcFiles, log: Logger): Promise<boolean> {
  if (!Number.isInteger(value) || value < -1000 || value > 1000) {
    throw new Error(`oomScoreAdj ${value} is not an integer in [-1000, 1000]`);
  }
  const current = await files.read(OWN_OOM_SCORE_ADJ);
  if (current === String(value)) {
    log.debug({ oomScoreAdj: value }, 'oom_score_adj already set');
    return true;
  }
  try {
    await files.write(OWN_OOM_SCORE_ADJ, String(value));
  } catch (e) {
    log.warn(
      { from: current ?? null, to: value, err: (e as Error).message },
      `could not set this process's oom_score_adj to ${value}; left at ${current ?? 'its value'}`,
    );
    return false;
  }
  log.info({ from: current === undefined ? null : Number(current), to: value }, 'set oom_score_adj');
  return true;
}
