/*
 * Each rule's state, published as retained JSON on $SYS/switchyard/rules/<name>:
 * at once on a load, a suspension or a resume, and otherwise at most once a
 * second for rules whose counters changed.
 */
import type { Logger } from 'pino'
import { BROKER_ORIGIN } from '../message.js'
import type { Publisher } from './contracts.js'
import type { RuleStateView } from './state.js'

export const STATUS_PREFIX = '$SYS/switchyard/rules/'
const STATUS_INTERVAL_MS = 1000

export class StatusBoard {
  readonly #publisher: Publisher
  readonly #logger: Logger
  readonly #view: (name: string) => RuleStateView | undefined
  readonly #dirty = new Set<string>()
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  /** A cluster node's: each status also goes to $SYS/switchyard/nodes/<nodeId>/rules/<name>, so no node overwrites another's. */
  readonly #nodePrefix: string | undefined

  constructor (publisher: Publisher, logger: Logger, view: (name: string) => RuleStateView | undefined, nodeId?: string) {
    this.#nodePrefix = nodeId === undefined ? undefined : `$SYS/switchyard/nodes/${nodeId}/rules/`
    this.#publisher = publisher
    this.#logger = logger
    this.#view = view
  }

  start (): void {
    this.#timer = setInterval(() => this.#flush(), STATUS_INTERVAL_MS)
    this.#timer.unref()
  }

  /** The rule changed: published with the next tick. */
  touch (name: string): void {
    this.#dirty.add(name)
  }

  /** Publishes the rule's state now. */
  publish (name: string): void {
    if (this.#stopped) return
    this.#dirty.delete(name)
    const view = this.#view(name)
    if (!view) return
    const payload = Buffer.from(JSON.stringify(view))
    for (const prefix of this.#prefixes()) {
      this.#publisher.publish({ topic: prefix + name, payload, qos: 0, retain: true, origin: BROKER_ORIGIN })
        .catch(err => this.#logger.debug({ err: (err as Error).message }, 'rule status not published'))
    }
  }

  /** The rule is gone: clears its retained status. */
  async clear (name: string): Promise<void> {
    this.#dirty.delete(name)
    await Promise.all(this.#prefixes().map(prefix =>
      this.#publisher.publish({ topic: prefix + name, payload: Buffer.alloc(0), qos: 0, retain: true, origin: BROKER_ORIGIN }).catch(() => {})))
  }

  #prefixes (): string[] {
    return this.#nodePrefix === undefined ? [STATUS_PREFIX] : [STATUS_PREFIX, this.#nodePrefix]
  }

  stop (): void {
    this.#stopped = true
    clearInterval(this.#timer)
  }

  #flush (): void {
    for (const name of this.#dirty) this.publish(name)
    this.#dirty.clear()
  }
}
