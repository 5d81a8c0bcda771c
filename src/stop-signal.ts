/**
 * `run`'s stop signal: the first SIGTERM or SIGINT starts the orderly stop (the rules stay in
 * place). The listeners stay installed afterwards, on purpose: with none, the signal-exit
 * handler execa installs while a child process runs sees nobody else listening and re-raises
 * the signal, killing the process mid-stop (measured in the VM tests: a SIGTERM that arrived
 * during a kernel command ended `run` with status 143 and no "stopped"). A second signal
 * means "now": it exits at once with 128 + the signal's number.
 */
import { constants } from 'node:os';

export interface StopSignal {
  /** resolves with the first signal */
  readonly received: Promise<NodeJS.Signals>;
  /** removes the listeners (tests) */
  dispose(): void;
}

/** Listens for SIGTERM and SIGINT from now on (register before start-up, so an early signal is not lost). */
export function listenForStop(exit: (code: number) => void = (code) => process.exit(code)): StopSignal {
  let first: NodeJS.Signals | null = null;
  let resolve: (signal: NodeJS.Signals) => void = () => undefined;
  const received = new Promise<NodeJS.Signals>((r) => {
    resolve = r;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    if (first === null) {
      first = signal;
      resolve(signal);
    } else {
      exit(128 + constants.signals[signal]);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    received,
    dispose: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}
