import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'

/** A real pino logger whose JSON lines are kept for the test to read. */
export function captureLog (level = 'info'): { logger: Logger, lines: Array<Record<string, unknown>>, text: () => string } {
  const lines: Array<Record<string, unknown>> = []
  const raw: string[] = []
  const sink = new Writable({
    write (chunk, _enc, done) {
      raw.push(chunk.toString())
      lines.push(JSON.parse(chunk.toString()))
      done()
    }
  })
  return { logger: pino({ level }, sink), lines, text: () => raw.join('') }
}
