// The process logger: pino JSON, one line per event. Nothing is logged per query at info.
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'presence-dns' }, timestamp: pino.stdTimeFunctions.isoTime });
}
