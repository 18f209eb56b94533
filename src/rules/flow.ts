/*
 * Flow control, not loss: when PAUSE_ABOVE conversions wait for one rule, the
 * clients feeding it are paused (the broker stops reading their sockets, and
 * TCP slows them down) until the backlog is down to RESUME_BELOW. Only
 * sources that cannot be paused (broker.publish(), rule outputs) can reach
 * MAX_PENDING_PER_RULE, beyond which matches are skipped (admit.ts).
 */
import type { FlowTarget } from './contracts.js'

export const PAUSE_ABOVE = 2_000
export const RESUME_BELOW = 500
export const MAX_PENDING_PER_RULE = 10_000

export class FlowControl {
  readonly #target: FlowTarget | undefined
  /** The clients each rule holds paused. */
  readonly #holding = new Map<string, Set<string>>()
  /** How many rules hold each paused client: it resumes when the last lets go. */
  readonly #pausedBy = new Map<string, number>()

  constructor (target: FlowTarget | undefined) {
    this.#target = target
  }

  /** A conversion of a client's message was queued for `rule`, which now has `backlog` waiting. */
  queued (rule: string, clientId: string, backlog: number): void {
    if (backlog < PAUSE_ABOVE || !this.#target) return
    let held = this.#holding.get(rule)
    if (held?.has(clientId)) return
    if (!held) this.#holding.set(rule, held = new Set())
    held.add(clientId)
    const n = (this.#pausedBy.get(clientId) ?? 0) + 1
    this.#pausedBy.set(clientId, n)
    if (n === 1) this.#target.pause(clientId)
  }

  /** A conversion for `rule` settled, and `backlog` still wait. */
  settled (rule: string, backlog: number): void {
    if (backlog <= RESUME_BELOW) this.release(rule)
  }

  /** `rule` lets go of every client it holds (its backlog drained, or it is gone). */
  release (rule: string): void {
    const held = this.#holding.get(rule)
    if (!held) return
    this.#holding.delete(rule)
    for (const clientId of held) {
      const n = (this.#pausedBy.get(clientId) ?? 1) - 1
      if (n > 0) this.#pausedBy.set(clientId, n)
      else {
        this.#pausedBy.delete(clientId)
        this.#target?.resume(clientId)
      }
    }
  }

  releaseAll (): void {
    for (const rule of [...this.#holding.keys()]) this.release(rule)
  }
}
