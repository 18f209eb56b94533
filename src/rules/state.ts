/* What is known about one rule, and its public, JSON-ready view. */
import type { LoadedMeta } from './protocol.js'
import type { ShadowView } from './shadow.js'
import { newLane, type Lane } from './publish.js'

export type RuleStatus = 'running' | 'failed' | 'suspended'

export interface RuleCounters {
  /** Messages whose topic matched the rule's filters (and were not loop-dropped). */
  matched: number
  /** Messages published by the rule. */
  outputs: number
  /** Conversions that returned nothing (null, undefined or []). */
  dropped: number
  /** Conversions that threw or returned an invalid output. */
  failed: number
  timeouts: number
  memoryErrors: number
  /** Messages not given to the rule because it was already in their provenance chain, or maxHops was reached. */
  loopDropped: number
  /** Matched messages not converted because the rule was suspended or too far behind. */
  skipped: number
  /**
   * Conversions lost because the rule host process died while they were in
   * it: received by it (it acknowledges each batch) and not answered. Not a
   * failure of the rule. What it had not received, and messages that arrive
   * while it restarts, wait for the new host and are not lost.
   */
  lostToHostCrash: number
}

/** A conversion that failed names its input's topic; a load that failed names the file (never in `topic`). */
export type RuleError = { at: string, topic: string, error: string } | { at: string, file: string, error: string }

/** A rule's state, as published on $SYS/switchyard/rules/<name> and returned by broker.rules(). */
export interface RuleStateView extends RuleCounters {
  name: string
  file: string
  status: RuleStatus
  error: string | null
  topics: string[]
  qos: 0 | 1 | 2 | null
  limits: { timeoutMs: number, memoryLimitMb: number } | null
  p50Ms: number | null
  p99Ms: number | null
  loadedAt: string | null
  suspendedUntil: string | null
  lastErrors: RuleError[]
  /** Whether the rule host holds an isolate for it now, as the broker sees it: made on a matching message, released after rules.isolateIdleMs (isolate-pool.ts). */
  isolate: 'idle' | 'running'
  /** Only when `<name>.next.js` is beside the rule: its comparison with this version (shadow.ts). */
  shadow?: ShadowView
}

const DURATIONS = 1024
const LAST_ERRORS = 5
/** Bytes of an erring input's payload kept for GET /api/rules/<name>. */
const INPUT_BYTES = 16 * 1024

/** The message a conversion failed on, as GET /api/rules/<name> shows it next to the error. */
export interface ErrorInput {
  topic: string
  /** At most the first 16 KiB of the payload; `truncated` says so. */
  payload: Buffer
  truncated: boolean
  qos: 0 | 1 | 2
  retain: boolean
  clientId: string | null
}

export class RuleState {
  readonly name: string
  /** Changes when the rule's file does (x.js replaced by x.ts, loader.ts). */
  file: string
  /** The version running in the host, if any. */
  meta: LoadedMeta | undefined
  loadedAt: Date | undefined
  /** The file's content that was last loaded or tried, to skip unchanged files. */
  sourceHash = ''
  /** That content itself, for GET /api/rules/<name>. */
  source = ''
  error: string | null = null
  suspendedUntil = 0
  backoffMs = 0
  /** Failures in a row. */
  streak = 0
  readonly counters: RuleCounters = { matched: 0, outputs: 0, dropped: 0, failed: 0, timeouts: 0, memoryErrors: 0, loopDropped: 0, skipped: 0, lostToHostCrash: 0 }
  readonly #durations = new Float64Array(DURATIONS)
  #durationCount = 0
  readonly lastErrors: RuleError[] = []
  /** Its outputs, published in the order of its inputs (publish.ts). */
  readonly lane: Lane = newLane()

  constructor (name: string, file: string) {
    this.name = name
    this.file = file
  }

  /** rules.isolateIdleMs for this rule (null: its isolate lives while it is loaded), and its last conversion's time (0: none since the load). */
  isolateIdleMs: number | null = null
  lastConverted = 0

  get isolate (): 'idle' | 'running' {
    if (this.meta === undefined) return 'idle'
    if (this.isolateIdleMs === null) return 'running'
    return this.lastConverted > 0 && Date.now() - this.lastConverted < this.isolateIdleMs ? 'running' : 'idle'
  }

  get status (): RuleStatus {
    if (this.meta === undefined) return 'failed'
    return this.suspendedUntil > Date.now() ? 'suspended' : 'running'
  }

  recordDuration (ms: number): void {
    this.#durations[this.#durationCount++ % DURATIONS] = ms
  }

  recordError (topic: string, error: string): void {
    this.#keep({ at: new Date().toISOString(), topic, error })
  }

  recordLoadError (file: string, error: string): void {
    this.#keep({ at: new Date().toISOString(), file, error })
  }

  #keep (entry: RuleError): void {
    this.lastErrors.push(entry)
    if (this.lastErrors.length > LAST_ERRORS) this.lastErrors.shift()
  }

  // Beside lastErrors, not in view(): the status goes to $SYS/, which must not carry payloads.
  readonly #inputs = new WeakMap<RuleError, ErrorInput>()

  /** The input of the conversion error just recorded (settle.ts records it, the engine knows the message). */
  noteInput (input: { topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean, clientId: string | null }): void {
    const last = this.lastErrors.at(-1)
    if (last === undefined || !('topic' in last) || last.topic !== input.topic || this.#inputs.has(last)) return
    const truncated = input.payload.length > INPUT_BYTES
    this.#inputs.set(last, { ...input, payload: Buffer.from(input.payload.subarray(0, INPUT_BYTES)), truncated })
  }

  /** lastErrors, each conversion error with its input. */
  errorsWithInput (): Array<RuleError & { input?: ErrorInput }> {
    return this.lastErrors.map(e => {
      const input = this.#inputs.get(e)
      return input === undefined ? { ...e } : { ...e, input }
    })
  }

  view (): RuleStateView {
    const [p50, p99] = percentiles(this.#durations.subarray(0, Math.min(this.#durationCount, DURATIONS)))
    return {
      name: this.name,
      file: this.file,
      status: this.status,
      error: this.error,
      topics: this.meta?.topics ?? [],
      qos: this.meta?.qos ?? null,
      limits: this.meta?.limits ?? null,
      ...this.counters,
      p50Ms: p50,
      p99Ms: p99,
      loadedAt: this.loadedAt?.toISOString() ?? null,
      suspendedUntil: this.status === 'suspended' ? new Date(this.suspendedUntil).toISOString() : null,
      lastErrors: [...this.lastErrors],
      isolate: this.isolate
    }
  }
}

/** p50 and p99 of the last 1024 execution times, in ms with 3 decimals. */
function percentiles (values: Float64Array): [number | null, number | null] {
  if (values.length === 0) return [null, null]
  const sorted = Float64Array.from(values).sort()
  const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 1000) / 1000
  return [at(0.5), at(0.99)]
}
