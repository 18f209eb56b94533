/*
 * The broker's ledger of conversions for the rule host: asked for, queued
 * here, sent in batches (one IPC message per event-loop turn), acknowledged,
 * settled; and what a dead host costs.
 *
 * A window bounds what the host holds: at most HOST_WINDOW conversions per
 * rule are sent and not yet answered. The rest of a rule's backlog waits
 * here, in order, and goes out as answers come back. So when the host dies:
 *   - what it had received and not answered (at most HOST_WINDOW per rule)
 *     is lost with it: settled as 'crash' (the rule's lostToHostCrash, not
 *     its failure), never retried, since one of them may be what killed it;
 *   - batches it never acknowledged (it acknowledges each batch before it
 *     converts any of it) never reached it: they go back to the front of
 *     their rule's queue;
 *   - the queue goes to the next host, in order.
 * The flow control (flow.ts) counts all of it, queued here or in the host.
 */
import type { RunDone, RunResult } from './contracts.js'
import type { RuleMessage } from './protocol.js'

/**
 * Conversions per rule in the rule host at most: what one crash can cost a
 * rule. Two of the host's calls into an isolate (up to 256 messages each,
 * host-main.ts), so that one waits in the host while the other converts and
 * the host never idles for a round trip to the broker.
 */
export const HOST_WINDOW = 512

/**
 * One conversion, from add() to settle(): the ledger's entry, its place in
 * its rule's queue and in a batch, and what the frame is written from. One
 * object per conversion, not an entry and a job: under a flood thousands
 * wait, and each object that waits is copied by every scavenge.
 */
export interface Job { readonly id: number, readonly rule: string, readonly msg: RuleMessage, readonly done: RunDone, sent: boolean }

/** What one death of the host cost. */
export interface Loss {
  lost: number
  lostByRule: Record<string, number>
  /** Conversions that go to the next host. */
  waiting: number
}

export class Conversions {
  readonly #window: number
  /** Every conversion asked for and not yet settled. */
  readonly #entries = new Map<number, Job>()
  /** Asked for and not yet settled, per rule. */
  readonly #perRule = new Map<string, number>()
  /** Sent to the host and not yet settled, per rule: at most the window. */
  readonly #inHost = new Map<string, number>()
  /** Not yet sent, per rule, in order; a rule is absent when it has none. */
  readonly #queues = new Map<string, Job[]>()
  #queued = 0
  /** Batches sent and not yet acknowledged, by sequence number. */
  readonly #unacked = new Map<number, Job[]>()
  #nextId = 1
  #nextSeq = 1

  constructor (window = HOST_WINDOW) {
    if (!(window >= 1)) throw new Error('the window must be at least 1')
    this.#window = window
  }

  /** Conversions asked for and not yet settled, for one rule (queued here or in the host). */
  inflight (rule: string): number {
    return this.#perRule.get(rule) ?? 0
  }

  /** Conversions sent to the host and not yet settled, for one rule: at most the window. */
  inHost (rule: string): number {
    return this.#inHost.get(rule) ?? 0
  }

  /** Conversions not yet sent, every rule. */
  get queued (): number {
    return this.#queued
  }

  add (rule: string, msg: RuleMessage, done: RunDone): void {
    const job: Job = { id: this.#nextId++, rule, msg, done, sent: false }
    this.#entries.set(job.id, job)
    this.#perRule.set(rule, this.inflight(rule) + 1)
    const queue = this.#queues.get(rule)
    if (queue) queue.push(job)
    else this.#queues.set(rule, [job])
    this.#queued++
  }

  /**
   * The batch to send now: for each rule, the oldest queued conversions that
   * fit in its window. Kept until the host acknowledges it; undefined when
   * nothing can be sent.
   */
  takeBatch (): { seq: number, jobs: Job[] } | undefined {
    const jobs: Job[] = []
    for (const [rule, queue] of this.#queues) {
      const inHost = this.inHost(rule)
      const room = this.#window - inHost
      if (room <= 0) continue
      const taken = queue.length <= room ? queue : queue.splice(0, room)
      if (taken === queue) this.#queues.delete(rule)
      for (const job of taken) {
        job.sent = true
        jobs.push(job)
      }
      this.#inHost.set(rule, inHost + taken.length)
      this.#queued -= taken.length
    }
    if (jobs.length === 0) return undefined
    const seq = this.#nextSeq++
    this.#unacked.set(seq, jobs)
    return { seq, jobs }
  }

  /** The host received every batch up to `seq`. */
  acknowledged (seq: number): void {
    for (const s of this.#unacked.keys()) {
      if (s > seq) break
      this.#unacked.delete(s)
    }
  }

  settle (id: number, result: RunResult, ms: number): void {
    const entry = this.#entries.get(id)
    if (!entry) return
    this.#entries.delete(id)
    decrement(this.#perRule, entry.rule)
    if (entry.sent) decrement(this.#inHost, entry.rule)
    entry.done(result, ms)
  }

  /** `rule` was unloaded: what is queued for it is never sent, and settles now with `result`. */
  dropQueued (rule: string, result: RunResult): void {
    const queue = this.#queues.get(rule)
    if (!queue) return
    this.#queues.delete(rule)
    this.#queued -= queue.length
    for (const job of queue) this.settle(job.id, result, 0)
  }

  /**
   * The host died (`reason`): what it had received settles as 'crash';
   * unacknowledged batches go back to the front of their rules' queues,
   * which wait for the next host.
   */
  hostDied (reason: string): Loss {
    const resend = new Map<string, Job[]>()
    for (const jobs of this.#unacked.values()) {
      for (const job of jobs) {
        if (this.#entries.get(job.id) !== job) continue // settled already
        let list = resend.get(job.rule)
        if (!list) resend.set(job.rule, list = [])
        list.push(job)
        job.sent = false
      }
    }
    this.#unacked.clear()
    for (const [rule, jobs] of resend) {
      const queue = this.#queues.get(rule)
      this.#queues.set(rule, queue ? jobs.concat(queue) : jobs)
      this.#queued += jobs.length
    }
    const lostByRule: Record<string, number> = {}
    let lost = 0
    for (const [id, { rule, sent }] of [...this.#entries]) {
      if (!sent) continue
      lostByRule[rule] = (lostByRule[rule] ?? 0) + 1
      lost++
      this.settle(id, { kind: 'crash', error: reason, logs: [] }, 0)
    }
    this.#inHost.clear()
    return { lost, lostByRule, waiting: this.#queued }
  }

  /** Settles everything not yet settled as 'crash': there will be no host to run it. */
  abandon (reason: string): void {
    this.#queues.clear()
    this.#queued = 0
    this.#unacked.clear()
    for (const id of [...this.#entries.keys()]) this.settle(id, { kind: 'crash', error: reason, logs: [] }, 0)
    this.#inHost.clear()
  }
}

function decrement (counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1
  if (n > 0) counts.set(key, n)
  else counts.delete(key)
}
