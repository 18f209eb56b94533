/*
 * Step 2 of a message's path: whether a rule whose filters matched gets the
 * message. A rule never sees a message it helped produce, and a chain ends
 * after maxHops rules (loopDropped). A suspended rule, or one with
 * MAX_PENDING_PER_RULE conversions already waiting, skips it (skipped).
 */
import { MAX_PENDING_PER_RULE } from './flow.js'
import { isSuspended, type Suspendable } from './suspend.js'

export type Admission = 'convert' | 'loopDropped' | 'skipped'

export interface AdmitContext {
  /** The message's provenance: the rules that produced it, in order. */
  chain: readonly string[]
  maxHops: number
  /** Conversions waiting for this rule. */
  backlog: number
  now: number
}

export function admit (name: string, rule: Suspendable, ctx: AdmitContext): Admission {
  if (ctx.chain.length >= ctx.maxHops || ctx.chain.includes(name)) return 'loopDropped'
  if (isSuspended(rule, ctx.now) || ctx.backlog >= MAX_PENDING_PER_RULE) return 'skipped'
  return 'convert'
}
