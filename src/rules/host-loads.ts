/*
 * The rules loaded into the rule host, as the broker keeps them: what to
 * load again after a restart, loads awaiting an answer, and loads asked for
 * while no host was ready.
 */
import type { LoadOutcome } from './contracts.js'
import type { IsolateIdleMs } from './isolate-pool.js'
import type { ToHost } from './protocol.js'
import type { Limits } from './validate.js'

export type LoadMessage = Extract<ToHost, { t: 'load' }>

/**
 * A load's limits, with the rule host's isolate policy beside them
 * (isolate-pool.ts); they travel in the load message's `limits`. Without
 * `isolateIdleMs` a rule keeps its isolate as long as it is loaded (the
 * broker's engine always sets it; `switchyard rule test` does not).
 */
export type LoadLimits = Limits & { isolateIdleMs?: IsolateIdleMs }

export class HostLoads {
  /** Every rule that loaded, to load again in a new host. */
  readonly #registry = new Map<string, { source: string, limits: LoadLimits, state: ReadonlyMap<string, string> | undefined }>()
  /** Loads awaiting an answer; `restore` marks a rule loaded again after a restart. */
  readonly #pending = new Map<number, { name: string, restore: boolean, resolve: (o: LoadOutcome) => void }>()
  /** Loads asked for while no host was ready. */
  #unsent: LoadMessage[] = []
  #nextId = 1

  /** A new load: the message to send (or hold), and its outcome. */
  ask (name: string, source: string, limits: LoadLimits, state?: ReadonlyMap<string, string>): { message: LoadMessage, outcome: Promise<LoadOutcome> } {
    const id = this.#nextId++
    const outcome = new Promise<LoadOutcome>(resolve => {
      this.#pending.set(id, {
        name,
        restore: false,
        resolve: o => {
          if (o.ok) this.#registry.set(name, { source, limits, state })
          resolve(o)
        }
      })
    })
    return { message: { t: 'load', id, name, source, limits, ...stateOf(state) }, outcome }
  }

  /** Keeps a load until a host is ready. */
  hold (message: LoadMessage): void {
    this.#unsent.push(message)
  }

  forget (name: string): void {
    this.#registry.delete(name)
  }

  /**
   * A host is ready: what to send it, in order. Every rule loaded before
   * (unless asked again meanwhile), then the loads asked meanwhile.
   */
  replay (onRestoreFailed: (name: string, error: string) => void): LoadMessage[] {
    const asked = new Set(this.#unsent.map(m => m.name))
    const messages: LoadMessage[] = []
    // `state` is the engine's live copy (rule-state-store.ts): a new host gets it as it is now.
    for (const [name, { source, limits, state }] of this.#registry) {
      if (asked.has(name)) continue
      const id = this.#nextId++
      this.#pending.set(id, { name, restore: true, resolve: o => { if (!o.ok) onRestoreFailed(name, o.error) } })
      messages.push({ t: 'load', id, name, source, limits, ...stateOf(state) })
    }
    return messages.concat(this.#unsent.splice(0))
  }

  answered (id: number, outcome: LoadOutcome): void {
    const load = this.#pending.get(id)
    this.#pending.delete(id)
    load?.resolve(outcome)
  }

  /**
   * The host died (`reason`). A new rule file being loaded may be what killed
   * it: fail it (the previous version, if any, keeps running). Rules being
   * restored had loaded before and are loaded again on the next start;
   * unsent loads wait.
   */
  hostDied (reason: string): void {
    const unsent = new Set(this.#unsent.map(m => m.id))
    for (const [id, { restore, resolve }] of this.#pending) {
      if (unsent.has(id)) continue
      this.#pending.delete(id)
      if (!restore) resolve({ ok: false, error: `${reason} while loading this rule` })
    }
  }

  /** No host will come: every load waiting fails with `error`. */
  abandon (error: string): void {
    this.#unsent = []
    for (const { resolve } of this.#pending.values()) resolve({ ok: false, error })
    this.#pending.clear()
  }
}

/** A rule's ctx.state as a load message carries it: only when it has some. */
function stateOf (state: ReadonlyMap<string, string> | undefined): { state?: Array<[string, string]> } {
  return state === undefined || state.size === 0 ? {} : { state: [...state] }
}
