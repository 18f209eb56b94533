/*
 * Step 4 of a message's path: a conversion's result becomes counts on its
 * rule, and either outputs to publish or a failure to report. What was lost
 * with the rule host process is counted as lostToHostCrash and is not the
 * rule's failure: no streak, no suspension, not in lastErrors.
 */
import type { RunResult } from './contracts.js'
import { outputsProblem } from './outputs.js'
import type { RawOutput } from './protocol.js'
import type { RuleState } from './state.js'
import { recordFailure, recordSuccess } from './suspend.js'

export type FailureCounter = 'failed' | 'timeouts' | 'memoryErrors'

export type Settled =
  | { kind: 'lost' }
  | { kind: 'ok', outputs: RawOutput[] }
  /** `suspendedForMs`: this failure suspended the rule, for that long. */
  | { kind: 'failed', counter: FailureCounter, error: string, suspendedForMs: number | undefined }

const COUNTERS: Record<'error' | 'timeout' | 'memory', FailureCounter> = { error: 'failed', timeout: 'timeouts', memory: 'memoryErrors' }

/** Settles one conversion of a message on `topic`. One invalid output fails the whole conversion, so a rule never half-publishes. */
export function settle (rule: RuleState, topic: string, result: RunResult, maxPacketSize: number, now: number): Settled {
  if (result.kind === 'crash') {
    rule.counters.lostToHostCrash++
    return { kind: 'lost' }
  }
  if (result.kind !== 'ok') return fail(rule, topic, COUNTERS[result.kind], result.error, now)
  const problem = outputsProblem(result.outputs, maxPacketSize)
  if (problem !== undefined) return fail(rule, topic, 'failed', problem, now)
  recordSuccess(rule)
  if (result.outputs.length === 0) rule.counters.dropped++
  return { kind: 'ok', outputs: result.outputs }
}

function fail (rule: RuleState, topic: string, counter: FailureCounter, error: string, now: number): Settled {
  rule.counters[counter]++
  rule.recordError(topic, error)
  return { kind: 'failed', counter, error, suspendedForMs: recordFailure(rule, now) }
}
