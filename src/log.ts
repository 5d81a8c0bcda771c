/**
 * Structured logs on stderr (stdout carries the rule set in dry-run and render).
 */
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export function createLogger(level: string = process.env.SWITCHBOARD_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { component: 'switchboard' } }, pino.destination({ fd: 2, sync: true }));
}
