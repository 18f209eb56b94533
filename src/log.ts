import { pino, type Logger } from 'pino'
import type { Config } from './config.js'

export type { Logger }

/** JSON lines on stdout, the format log shippers expect. */
export function createLogger (config: Config['log']): Logger {
  return pino({ level: config.level, base: { name: 'switchyard' } })
}
