/**
 * Structured logs on stderr (stdout carries the rule set in dry-run and render).
 *
 * JSON lines (pino) for the DaemonSet and for pipes; readable lines when stderr is a
 * terminal, or when asked for with `--log-format text`. The readable form is pino-pretty's
 * formatter writing synchronously to fd 2 (not a worker-thread transport), so log lines
 * never overtake each other or the exit.
 */
import { writeSync } from 'node:fs';
import { type DestinationStream, type Logger, pino } from 'pino';
import { prettyFactory } from 'pino-pretty';

export type { Logger } from 'pino';

export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  level?: string;
  /** `auto` (the default): text when stderr is a terminal, JSON otherwise */
  format?: LogFormat | 'auto';
}

function textDestination(colorize: boolean): DestinationStream {
  const prettify = prettyFactory({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,component',
    singleLine: false,
  });
  return {
    write(line: string) {
      writeSync(2, prettify(line));
    },
  };
}

export function createLogger(options: string | LoggerOptions = {}): Logger {
  const opts = typeof options === 'string' ? { level: options } : options;
  const level = opts.level ?? process.env.SWITCHBOARD_LOG_LEVEL ?? 'info';
  const tty = process.stderr.isTTY === true;
  const format = opts.format === undefined || opts.format === 'auto' ? (tty ? 'text' : 'json') : opts.format;
  const base = { component: 'switchboard' };
  if (format === 'text') return pino({ level, base }, textDestination(tty));
  return pino({ level, base }, pino.destination({ fd: 2, sync: true }));
}
