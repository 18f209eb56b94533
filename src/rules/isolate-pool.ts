/*
 * When a rule's isolate exists, in the rule host (issue 16, docs/rules.md#density-when-a-rule-has-an-isolate).
 *
 * An isolate costs about 1.1 MiB of RSS even for a ten-line rule (measured:
 * 1,000 rules, 1,060 MiB), and a disposed one gives it back (1,000 created
 * and disposed: +16 MiB). So a rule's isolate is made when it is loaded (to
 * read its exports and check them), released at once, made again on the
 * rule's first matching message, and released after `isolateIdleMs` without
 * a conversion. 1,000 loaded rules that see no traffic cost no isolates.
 *
 * Each rule keeps an isolate of its own when it has one: grouping rules into
 * shared isolates (one context each, ~230 KiB a context) was measured and
 * not kept, since one rule's memory exhaustion would dispose its neighbours.
 */

/**
 * How long an idle rule keeps its isolate. `null`: as long as the rule is
 * loaded (the isolate is made at load and kept; what `switchyard rule test`
 * does). 0: released as soon as its queue is empty.
 */
export type IsolateIdleMs = number | null

/** Releases a rule's isolate once it has been idle for `idleMs`. */
export class IdleRelease {
  readonly #idleMs: number
  readonly #release: () => void
  #timer: NodeJS.Timeout | undefined

  constructor (idleMs: number, release: () => void) {
    this.#idleMs = idleMs
    this.#release = release
  }

  /** A conversion call ended: the idle clock starts again. */
  used (): void {
    if (this.#timer) this.#timer.refresh()
    else {
      this.#timer = setTimeout(() => { this.#timer = undefined; this.#release() }, this.#idleMs)
      this.#timer.unref()
    }
  }

  cancel (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/**
 * At most `size` isolates being made at once. Loading 1,000 rules sends
 * 1,000 loads together; made all at once, their isolates would all be alive
 * before the first is released (the whole 1.1 GiB, if only for a second).
 */
export class CreationGate {
  readonly #size: number
  #active = 0
  readonly #waiting: Array<() => void> = []

  constructor (size: number) {
    this.#size = size
  }

  async run<T> (make: () => Promise<T>): Promise<T> {
    if (this.#active >= this.#size) await new Promise<void>(resolve => this.#waiting.push(resolve))
    else this.#active++
    try {
      return await make()
    } finally {
      // hand the place straight to the next one waiting, if any
      const next = this.#waiting.shift()
      if (next) next()
      else this.#active--
    }
  }
}
