/*
 * Per-rule state, `ctx.state` (docs/rules.md#per-rule-state-ctxstate): a
 * small key-value store of JSON values that outlives a message.
 *
 * Where it lives, from the rule outwards:
 *   1. the isolate: STATE_JS below, inside the sandbox's wrapper module. A
 *      conversion's changes are a transaction: kept when convert returns
 *      valid outputs, dropped when it throws (or times out, or its outputs
 *      are malformed), and returned with its result as `state` changes.
 *   2. the rule host process: HostRuleStates, a copy per rule, updated from
 *      each result. An isolate made again (after a memory error, once
 *      released idle, on a reload) is seeded from it before it converts.
 *   3. the broker: rule-state-store.ts, a mirror updated from each result
 *      that comes back, written to the persistence in batches; a new rule
 *      host, and a rule after a broker restart, are seeded from it.
 * A conversion's state changes travel with its outputs, so a rule host crash
 * loses the changes of exactly the conversions whose outputs it loses.
 */

/** At most this many keys per rule. */
export const STATE_MAX_KEYS = 100
/** At most this many characters per rule: every key and every value as JSON text. */
export const STATE_MAX_CHARS = 64 * 1024
/** At most this many characters in one key. */
export const STATE_MAX_KEY = 256

/** A conversion's changes: [key, the value as JSON text, or null when deleted]. */
export type StateChanges = Array<[string, string | null]>

/**
 * Runs inside the isolate, in the wrapper module (sandbox.ts): `ctx`, given
 * to convert as its second argument; stateBegin() and stateCommit() around
 * each conversion; __stateLoad to seed the store. Values are kept as JSON
 * text: a get returns a copy, and the size is the text's length.
 */
export const STATE_JS = `
const STATE_MAX_KEYS = ${STATE_MAX_KEYS}, STATE_MAX_CHARS = ${STATE_MAX_CHARS}, STATE_MAX_KEY = ${STATE_MAX_KEY}
const stateData = new Map()
let stateChars = 0
// this conversion's changes: key -> JSON text, or undefined once deleted
const txn = new Map()
let txnChars = 0, txnCount = 0
const stateKey = (key, what) => {
  if (typeof key !== 'string' || key.length === 0 || key.length > STATE_MAX_KEY) {
    throw new TypeError('ctx.state.' + what + ': a key is a string of 1 to ' + STATE_MAX_KEY + ' characters; got ' + (typeof key === 'string' ? key.length + ' characters' : typeof key))
  }
  return key
}
const current = (key) => txn.has(key) ? txn.get(key) : stateData.get(key)
const state = Object.freeze({
  get (key) { const v = current(stateKey(key, 'get')); return v === undefined ? undefined : JSON.parse(v) },
  has (key) { return current(stateKey(key, 'has')) !== undefined },
  set (key, value) {
    stateKey(key, 'set')
    let json
    try { json = JSON.stringify(value) } catch (e) { throw new TypeError('ctx.state.set(' + JSON.stringify(key) + '): the value cannot be stored as JSON: ' + e.message) }
    if (json === undefined) throw new TypeError('ctx.state.set(' + JSON.stringify(key) + '): the value must be JSON (an object, array, string, number, boolean or null); got ' + typeof value)
    const was = current(key)
    const count = txnCount + (was === undefined ? 1 : 0)
    const chars = txnChars - (was === undefined ? 0 : key.length + was.length) + key.length + json.length
    if (count > STATE_MAX_KEYS) throw new RangeError('ctx.state: at most ' + STATE_MAX_KEYS + ' keys per rule; setting ' + JSON.stringify(key) + ' would make ' + count + ' (delete the keys no longer needed)')
    if (chars > STATE_MAX_CHARS) throw new RangeError('ctx.state: at most ' + STATE_MAX_CHARS + ' characters per rule (keys and values as JSON); setting ' + JSON.stringify(key) + ' would make ' + chars)
    txn.set(key, json)
    txnCount = count
    txnChars = chars
  },
  delete (key) {
    const was = current(stateKey(key, 'delete'))
    if (was === undefined) return false
    txn.set(key, undefined)
    txnCount--
    txnChars -= key.length + was.length
    return true
  },
  keys () {
    const keys = []
    for (const k of stateData.keys()) if (current(k) !== undefined) keys.push(k)
    for (const [k, v] of txn) if (v !== undefined && !stateData.has(k)) keys.push(k)
    return keys
  }
})
const ctx = Object.freeze({ rule: __RULE_NAME__, state })
function stateBegin () {
  txn.clear()
  txnChars = stateChars
  txnCount = stateData.size
}
// The changes as [key, JSON or null], or undefined for none; they are now the rule's state.
function stateCommit () {
  if (txn.size === 0) return undefined
  const changes = []
  for (const [k, v] of txn) {
    if (v === undefined) { stateData.delete(k); changes.push([k, null]) } else { stateData.set(k, v); changes.push([k, v]) }
  }
  stateChars = txnChars
  txn.clear()
  return changes
}
define('__stateLoad', (entries) => {
  stateData.clear()
  stateChars = 0
  for (const [k, v] of entries) { stateData.set(k, v); stateChars += k.length + v.length }
})
`

/** One rule's state in the rule host: the truth while the host lives; `version` counts the changes applied. */
export interface HostRuleState { readonly entries: Map<string, string>, version: number }

/** Every rule's state in the rule host process (host-main.ts, sandbox.ts). */
export class HostRuleStates {
  readonly #rules = new Map<string, HostRuleState>()

  /**
   * A load brings the broker's copy. A rule the host knows already keeps its
   * own, which is as new or newer (a reload while it converts).
   */
  seed (rule: string, entries: ReadonlyArray<[string, string]> | undefined): void {
    if (this.#rules.has(rule) || entries === undefined || entries.length === 0) return
    this.#rules.set(rule, { entries: new Map(entries), version: 1 })
  }

  get (rule: string): HostRuleState | undefined { return this.#rules.get(rule) }

  apply (rule: string, changes: StateChanges): void {
    let state = this.#rules.get(rule)
    if (!state) this.#rules.set(rule, state = { entries: new Map(), version: 0 })
    applyChanges(state.entries, changes)
    state.version++
  }

  drop (rule: string): void { this.#rules.delete(rule) }
}

export function applyChanges (entries: Map<string, string>, changes: StateChanges): void {
  for (const [key, value] of changes) {
    if (value === null) entries.delete(key)
    else entries.set(key, value)
  }
}
