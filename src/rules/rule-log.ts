/*
 * What rules write to the broker log: their console lines and their
 * failures, at most LINES_PER_SECOND per rule, then a count of what was
 * suppressed. A rule failing on every message must not flood the log.
 */
import type { Logger } from 'pino'
import type { Message } from '../message.js'

const LINES_PER_SECOND = 20

export class RuleLog {
  readonly #logger: Logger
  readonly #budget = new Map<string, { windowStart: number, used: number, suppressed: number }>()

  constructor (logger: Logger) {
    this.#logger = logger
  }

  /** console.* lines from a conversion, as [level, text]. */
  console (rule: string, lines: ReadonlyArray<[string, string]>): void {
    for (const [level, text] of lines) {
      if (!this.#allow(rule)) continue
      const log = level === 'error' ? 'error' : level === 'warn' ? 'warn' : level === 'debug' ? 'debug' : 'info'
      this.#logger[log]({ rule }, text)
    }
  }

  failure (rule: string, input: Message, kind: string, error: string): void {
    if (!this.#allow(rule)) return
    this.#logger.warn({ rule, topic: input.topic, clientId: input.origin.clientId, payload: preview(input.payload), kind, error }, 'rule failed')
  }

  /** A removed rule's budget goes with it: rules added from code may come and go by the thousand. */
  forget (rule: string): void {
    this.#budget.delete(rule)
  }

  #allow (rule: string): boolean {
    const now = Date.now()
    let budget = this.#budget.get(rule)
    if (!budget || now - budget.windowStart >= 1000) {
      if (budget && budget.suppressed > 0) this.#logger.warn({ rule, suppressed: budget.suppressed }, `rule log lines suppressed (more than ${LINES_PER_SECOND} a second)`)
      budget = { windowStart: now, used: 0, suppressed: 0 }
      this.#budget.set(rule, budget)
    }
    if (budget.used < LINES_PER_SECOND) { budget.used++; return true }
    budget.suppressed++
    return false
  }
}

function preview (bytes: Buffer): string {
  const text = bytes.subarray(0, 200).toString('utf8')
  return bytes.length > 200 ? `${text}… (${bytes.length} bytes)` : text
}
