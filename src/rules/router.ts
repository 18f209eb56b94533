import { createRequire } from 'node:module'
import { wildcardFirst } from '../topics.js'

// qlobber is the trie Aedes itself matches subscriptions with (via mqemitter).
interface Trie {
  add(filter: string, value: string): void
  remove(filter: string, value: string): void
  match(topic: string): Set<string>
}
const { QlobberDedup } = createRequire(import.meta.url)('qlobber') as { QlobberDedup: new (options: object) => Trie }

const MQTT = { separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true }

/**
 * Which rules' topic filters match a topic: one trie walk per message,
 * however many rules there are.
 */
export class Router {
  // Filters that start with a wildcard must not match topics starting with
  // '$' [MQTT-4.7.2-1], so they live in their own trie.
  readonly #plain: Trie = new QlobberDedup(MQTT)
  readonly #wild: Trie = new QlobberDedup(MQTT)
  readonly #filters = new Map<string, readonly string[]>()
  // Filters per trie: an empty trie is skipped (qlobber would still split the topic).
  #plainCount = 0
  #wildCount = 0

  /** Sets (or replaces) a rule's filters. */
  set (rule: string, filters: readonly string[]): void {
    this.delete(rule)
    for (const f of filters) this.#count(f, 1).add(f, rule)
    this.#filters.set(rule, filters)
  }

  delete (rule: string): void {
    for (const f of this.#filters.get(rule) ?? []) this.#count(f, -1).remove(f, rule)
    this.#filters.delete(rule)
  }

  /** The rules matching `topic`; one entry per rule, however many of its filters match. */
  match (topic: string): Set<string> {
    const plain = this.#plainCount > 0 ? this.#plain.match(topic) : new Set<string>()
    if (topic.startsWith('$') || this.#wildCount === 0) return plain
    const wild = this.#wild.match(topic)
    if (plain.size === 0) return wild
    for (const r of wild) plain.add(r)
    return plain
  }

  #count (filter: string, delta: number): Trie {
    if (wildcardFirst(filter)) {
      this.#wildCount += delta
      return this.#wild
    }
    this.#plainCount += delta
    return this.#plain
  }
}
