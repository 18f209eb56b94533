import { createRequire } from 'node:module'
import { wildcardFirst } from './topics.js'

// qlobber is the trie Aedes itself matches subscriptions with (via mqemitter).
interface Trie<T> {
  add(filter: string, value: T): void
  remove(filter: string, value: T): void
  match(topic: string): Set<T>
}
const { QlobberDedup } = createRequire(import.meta.url)('qlobber') as { QlobberDedup: new <T>(options: object) => Trie<T> }

const MQTT = { separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true }

/** Topics whose matches are remembered; beyond it the memory starts afresh. */
export const MATCH_CACHE_SIZE = 4096

/**
 * Which rules' topic filters match a topic: one trie walk per message,
 * however many rules there are. Keyed by rule name; the bus (src/bus.ts)
 * keys it by subscription.
 */
export class Router<K = string> {
  // Filters that start with a wildcard must not match topics starting with
  // '$' [MQTT-4.7.2-1], so they live in their own trie.
  readonly #plain: Trie<K> = new QlobberDedup<K>(MQTT)
  readonly #wild: Trie<K> = new QlobberDedup<K>(MQTT)
  readonly #filters = new Map<K, readonly string[]>()
  // Filters per trie: an empty trie is skipped (qlobber would still split the topic).
  #plainCount = 0
  #wildCount = 0
  // A topic's matches until the filters change (issue 16): devices publish on
  // the same few topics, and a walk splits the topic and builds a Set each
  // time, for every message and every rule output.
  readonly #cache = new Map<string, ReadonlySet<K>>()

  /** How many keys have filters. */
  get size (): number { return this.#filters.size }

  /** Sets (or replaces) a rule's filters. */
  set (rule: K, filters: readonly string[]): void {
    this.delete(rule)
    this.#cache.clear()
    for (const f of filters) this.#count(f, 1).add(f, rule)
    this.#filters.set(rule, filters)
  }

  delete (rule: K): void {
    this.#cache.clear()
    for (const f of this.#filters.get(rule) ?? []) this.#count(f, -1).remove(f, rule)
    this.#filters.delete(rule)
  }

  /** The rules matching `topic`; one entry per rule, however many of its filters match. Not to be changed: it is shared. */
  match (topic: string): ReadonlySet<K> {
    let found = this.#cache.get(topic)
    if (found !== undefined) return found
    found = this.#walk(topic)
    if (this.#cache.size >= MATCH_CACHE_SIZE) this.#cache.clear()
    this.#cache.set(topic, found)
    return found
  }

  #walk (topic: string): Set<K> {
    const plain = this.#plainCount > 0 ? this.#plain.match(topic) : new Set<K>()
    if (topic.startsWith('$') || this.#wildCount === 0) return plain
    const wild = this.#wild.match(topic)
    if (plain.size === 0) return wild
    // A copy: qlobber may hand back a trie node's own Set (when one node
    // matches), and adding to it added the wildcard keys to that filter for good.
    const both = new Set(plain)
    for (const r of wild) both.add(r)
    return both
  }

  #count (filter: string, delta: number): Trie<K> {
    if (wildcardFirst(filter)) {
      this.#wildCount += delta
      return this.#wild
    }
    this.#plainCount += delta
    return this.#plain
  }
}
