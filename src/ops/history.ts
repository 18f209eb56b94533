/*
 * GET /api/history: the broker's traffic over the last 10 minutes, for the
 * console's overview chart. A ring of samples taken every 5 s from the
 * broker's counters (rates are the difference between two samples), so
 * asking costs nothing and the broker keeps no per-message state for it.
 */

export interface TrafficCounters {
  /** PUBLISH packets received from clients, all QoS. */
  received: number
  /** PUBLISH packets sent to clients, all QoS. */
  sent: number
  clients: number
}

export interface HistorySample {
  ts: string
  messagesInPerSecond: number
  messagesOutPerSecond: number
  clients: number
}

export const HISTORY_INTERVAL_MS = 5000
const WINDOW_MS = 10 * 60_000

export class History {
  readonly #read: () => TrafficCounters
  readonly #intervalMs: number
  readonly #size: number
  readonly #ring: HistorySample[] = []
  #last: { at: number, counters: TrafficCounters } | undefined
  #timer: NodeJS.Timeout | undefined

  constructor (read: () => TrafficCounters, intervalMs = HISTORY_INTERVAL_MS) {
    this.#read = read
    this.#intervalMs = intervalMs
    this.#size = Math.ceil(WINDOW_MS / intervalMs)
  }

  /** Takes a first sample (rates 0: nothing measured yet), then one every interval. */
  start (): void {
    if (this.#timer) return
    this.#sample()
    this.#timer = setInterval(() => this.#sample(), this.#intervalMs)
    // Never what keeps a process alive.
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  view (): { intervalMs: number, samples: HistorySample[] } {
    return { intervalMs: this.#intervalMs, samples: this.#ring.slice() }
  }

  #sample (): void {
    const now = Date.now()
    const counters = this.#read()
    const last = this.#last
    const seconds = last === undefined ? 0 : (now - last.at) / 1000
    const rate = (a: number, b: number) => seconds > 0 ? Math.round(Math.max(0, a - b) / seconds * 100) / 100 : 0
    this.#ring.push({
      ts: new Date(now).toISOString(),
      messagesInPerSecond: last === undefined ? 0 : rate(counters.received, last.counters.received),
      messagesOutPerSecond: last === undefined ? 0 : rate(counters.sent, last.counters.sent),
      clients: counters.clients
    })
    if (this.#ring.length > this.#size) this.#ring.shift()
    this.#last = { at: now, counters }
  }
}
