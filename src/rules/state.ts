/* What is known about one rule, and its public, JSON-ready view. */
import type { LoadedMeta } from './protocol.js'
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
}

const DURATIONS = 1024
const LAST_ERRORS = 5

export class RuleState {
  readonly name: string
  readonly file: string
  /** The version running in the host, if any. */
  meta: LoadedMeta | undefined
  loadedAt: Date | undefined
  /** The file's content that was last loaded or tried, to skip unchanged files. */
  sourceHash = ''
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
      lastErrors: [...this.lastErrors]
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
