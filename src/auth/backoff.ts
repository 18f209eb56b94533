/**
 * Slows password guessing per remote address: after a few failures, each
 * further failed CONNECT from that address waits longer before its CONNACK
 * (doubling, capped). The wait is a timer: other clients are not slowed, and
 * a success clears the address.
 */
export class FailureBackoff {
  readonly #failures = new Map<string, { count: number, last: number }>()
  readonly #free: number
  readonly #baseMs: number
  readonly #maxMs: number
  readonly #forgetAfterMs: number
  readonly #now: () => number

  constructor (options: { free?: number, baseMs?: number, maxMs?: number, forgetAfterMs?: number, now?: () => number } = {}) {
    this.#free = options.free ?? 3
    this.#baseMs = options.baseMs ?? 250
    this.#maxMs = options.maxMs ?? 8000
    this.#forgetAfterMs = options.forgetAfterMs ?? 15 * 60_000
    this.#now = options.now ?? Date.now
  }

  /** Records a failure; returns how long to hold this failure's answer. */
  fail (address: string): number {
    const now = this.#now()
    const entry = this.#failures.get(address)
    const count = entry && now - entry.last < this.#forgetAfterMs ? entry.count + 1 : 1
    this.#failures.set(address, { count, last: now })
    if (this.#failures.size > 100_000) this.#prune(now)
    if (count <= this.#free) return 0
    return Math.min(this.#baseMs * 2 ** (count - this.#free - 1), this.#maxMs)
  }

  succeed (address: string): void {
    this.#failures.delete(address)
  }

  #prune (now: number): void {
    for (const [address, { last }] of this.#failures) if (now - last >= this.#forgetAfterMs) this.#failures.delete(address)
  }
}
