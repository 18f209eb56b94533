/*
 * Shadow versions (docs/rules.md#shadow-versions): `rules/<name>.next.js`
 * beside `rules/<name>.js` is the next version of rule <name>, tried on
 * real traffic before it goes live. It is loaded in the rule host as a rule
 * of its own (named `<name>.next`), but never routed: each message the live
 * rule converts is also given to it, its outputs are never published, and
 * once both results are back they are compared. The live rule's status says
 * how many were compared, how many differed, and shows the last differences.
 * Promoting it is renaming it to `<name>.js`: hot reload does the rest.
 *
 * Its ctx.state starts as the live rule's (the live copy is what a load
 * sends) and then is its own, in the rule host only: a shadow never writes
 * the live rule's state, nor the persistence.
 */
import type { Logger } from 'pino'
import type { RuleFileChange, RuleRunner, RunResult } from './contracts.js'
import { resolveOutput } from './outputs.js'
import type { LoadedMeta, RuleMessage } from './protocol.js'
import type { Limits } from './validate.js'

export const SHADOW_SUFFIX = '.next'
/** Kept in a rule's status. */
const LAST_DIFFS = 5
/** Beyond this many waiting, messages are not mirrored to the shadow (counted as skipped): a slow shadow never holds up memory without bound. */
const MAX_WAITING = 2000
const SHOWN_PAYLOAD = 500

export interface ShadowDiff { at: string, topic: string, payload: string, live: unknown, next: unknown }

/** The `shadow` of a rule's status. */
export interface ShadowView {
  file: string
  status: 'running' | 'failed'
  error: string | null
  /** Messages both versions converted, whose results were compared. */
  compared: number
  /** Of those, the ones whose results differed (outputs, or success against failure). */
  differing: number
  /** Messages not given to the shadow: too many waiting for it. */
  skipped: number
  lastDiffs: ShadowDiff[]
}

interface Shadow {
  readonly name: string
  file: string
  meta: LoadedMeta | undefined
  error: string | null
  hash: string
  compared: number
  differing: number
  skipped: number
  lastDiffs: ShadowDiff[]
}

export interface ShadowOptions {
  runner: RuleRunner
  limits: () => Limits
  /** The live rule's ctx.state, the shadow's start. */
  state: (live: string) => Promise<ReadonlyMap<string, string>>
  logger: Logger
  /** The live rule's status changed. */
  touch: (live: string) => void
}

/** `x.next` → `x`; undefined for a name that is not a shadow's. */
export function shadowOf (name: string): string | undefined {
  return name.endsWith(SHADOW_SUFFIX) && name.length > SHADOW_SUFFIX.length ? name.slice(0, -SHADOW_SUFFIX.length) : undefined
}

export class Shadows {
  readonly #options: ShadowOptions
  /** By live rule name. */
  readonly #shadows = new Map<string, Shadow>()

  constructor (options: ShadowOptions) {
    this.#options = options
  }

  /** A change to a shadow's file: loads, reloads or removes it. */
  async apply (change: RuleFileChange): Promise<void> {
    const live = shadowOf(change.name)!
    const { runner, logger } = this.#options
    if (change.kind === 'removed') {
      if (!this.#shadows.delete(live)) return
      runner.unload(change.name)
      logger.info({ rule: live, file: change.file }, 'shadow version removed')
      this.#options.touch(live)
      return
    }
    let shadow = this.#shadows.get(live)
    if (!shadow) this.#shadows.set(live, shadow = { name: change.name, file: change.file, meta: undefined, error: null, hash: '', compared: 0, differing: 0, skipped: 0, lastDiffs: [] })
    shadow.hash = change.hash
    shadow.file = change.file
    const outcome = change.error !== undefined
      ? { ok: false as const, error: change.error }
      : await runner.load(change.name, change.source, this.#options.limits(), await this.#options.state(live))
    if (this.#shadows.get(live) !== shadow || shadow.hash !== change.hash) return // superseded meanwhile
    if (outcome.ok) {
      // A new version of the shadow: its comparison starts afresh.
      Object.assign(shadow, { meta: outcome.meta, error: null, compared: 0, differing: 0, skipped: 0, lastDiffs: [] })
      logger.info({ rule: live, file: change.file }, 'shadow version loaded: it gets the live rule\'s messages, and its outputs are compared, not published')
    } else {
      shadow.meta = undefined
      shadow.error = outcome.error
      logger.error({ rule: live, file: change.file, error: outcome.error }, 'shadow version failed to load')
    }
    this.#options.touch(live)
  }

  /**
   * The live rule `live` converts `input`: the shadow, if it has one that
   * loaded, converts it too. Returns what to call with the live result
   * (undefined when there is no shadow): the two are compared when both are in.
   */
  mirror (live: string, input: RuleMessage, liveMeta: LoadedMeta): ((result: RunResult) => void) | undefined {
    const shadow = this.#shadows.get(live)
    const meta = shadow?.meta
    if (shadow === undefined || meta === undefined) return undefined
    const { runner } = this.#options
    if (runner.inflight(shadow.name) >= MAX_WAITING) {
      shadow.skipped++
      return undefined
    }
    let liveResult: RunResult | undefined
    let nextResult: RunResult | undefined
    const both = () => {
      if (liveResult === undefined || nextResult === undefined || this.#shadows.get(live) !== shadow || shadow.meta !== meta) return
      this.#compare(live, shadow, input, summary(liveResult, liveMeta, input), summary(nextResult, meta, input))
    }
    runner.convert(shadow.name, input, result => { nextResult = result; both() })
    return result => { liveResult = result; both() }
  }

  view (live: string): ShadowView | undefined {
    const s = this.#shadows.get(live)
    if (s === undefined) return undefined
    return { file: s.file, status: s.meta ? 'running' : 'failed', error: s.error, compared: s.compared, differing: s.differing, skipped: s.skipped, lastDiffs: [...s.lastDiffs] }
  }

  #compare (live: string, shadow: Shadow, input: RuleMessage, a: Summary, b: Summary): void {
    // A conversion lost with a crashed rule host is nobody's result.
    if (a === LOST || b === LOST) return
    shadow.compared++
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      shadow.differing++
      shadow.lastDiffs.push({ at: new Date().toISOString(), topic: input.topic, payload: shown(input.bytes), live: a, next: b })
      if (shadow.lastDiffs.length > LAST_DIFFS) shadow.lastDiffs.shift()
    }
    this.#options.touch(live)
  }
}

const LOST = 'lost'
type Summary = typeof LOST | { error: string } | Array<Record<string, unknown>>

/**
 * A result as compared and shown: the outputs as they would be published
 * (QoS and retain resolved, payloads as text or hex), or the error's first
 * line (stack lines differ between two versions of a file).
 */
function summary (result: RunResult, meta: LoadedMeta, input: RuleMessage): Summary {
  if (result.kind === 'crash') return LOST
  if (result.kind !== 'ok') return { error: `${result.kind === 'error' ? '' : `${result.kind}: `}${result.error.split('\n')[0]}` }
  return result.outputs.map(raw => {
    const o = resolveOutput(raw, meta.qos, input.qos)
    const out: Record<string, unknown> = { topic: o.topic, ...payloadOf(o.payload), qos: o.qos, retain: o.retain }
    if (o.properties !== undefined) {
      const { correlationData, ...rest } = o.properties
      out.properties = correlationData === undefined ? rest : { ...rest, ...payloadOf(correlationData, 'correlationData') }
    }
    return out
  })
}

function payloadOf (p: string | Uint8Array, key = 'payload'): Record<string, string> {
  if (typeof p === 'string') return { [key]: p }
  const bytes = Buffer.from(p.buffer, p.byteOffset, p.byteLength)
  const text = bytes.toString('utf8')
  // Text and bytes that are the same UTF-8 compare equal: they publish the same payload.
  return Buffer.from(text).equals(bytes) ? { [key]: text } : { [`${key}Hex`]: bytes.toString('hex') }
}

function shown (bytes: Uint8Array): string {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
  return text.length > SHOWN_PAYLOAD ? `${text.slice(0, SHOWN_PAYLOAD)}…` : text
}
