import { pino, type Logger } from 'pino'
import pretty from 'pino-pretty'
import type { Config } from './config.js'

export type { Logger }

/**
 * JSON lines on stdout, the format log shippers expect; with `pretty`
 * (the CLI sets it on a terminal or with --pretty), readable lines instead.
 */
export function createLogger (config: Config['log'], options: { pretty?: boolean } = {}): Logger {
  const base = { level: config.level, base: { name: 'switchyard' } }
  if (!options.pretty) return pino(base)
  return pino(base, pretty({ colorize: true, sync: true, ignore: 'pid,hostname,name', translateTime: 'SYS:HH:MM:ss.l' }))
}
