/*
 * The suspend policy: a rule that fails SUSPEND_AFTER times in a row (thrown,
 * timed out, out of memory, invalid output) is suspended with backoff, never
 * forever: 1 s, then 2 s, 4 s ... up to 60 s, and it resumes by itself. One
 * success resets the backoff. A conversion lost with the rule host is not a
 * failure and never reaches this policy.
 */

export const SUSPEND_AFTER = 5
export const FIRST_BACKOFF_MS = 1000
export const MAX_BACKOFF_MS = 60_000

/** The part of a rule's state the policy reads and writes. */
export interface Suspendable {
  /** Failures in a row. */
  streak: number
  backoffMs: number
  /** Epoch ms; the rule is suspended while this is in the future. */
  suspendedUntil: number
}

export function isSuspended (rule: Suspendable, now: number): boolean {
  return rule.suspendedUntil > now
}

/** A successful conversion: the streak and the backoff start over. */
export function recordSuccess (rule: Suspendable): void {
  rule.streak = 0
  rule.backoffMs = 0
}

/** A failed conversion. Returns how long the rule is now suspended for, or undefined if it is not (further). */
export function recordFailure (rule: Suspendable, now: number): number | undefined {
  rule.streak++
  if (rule.streak < SUSPEND_AFTER || isSuspended(rule, now)) return undefined
  rule.backoffMs = Math.min(rule.backoffMs === 0 ? FIRST_BACKOFF_MS : rule.backoffMs * 2, MAX_BACKOFF_MS)
  rule.suspendedUntil = now + rule.backoffMs
  rule.streak = 0
  return rule.backoffMs
}

/** New code (a load or reload) starts afresh: no streak, no backoff, not suspended. */
export function resetSuspension (rule: Suspendable): void {
  rule.streak = 0
  rule.backoffMs = 0
  rule.suspendedUntil = 0
}
