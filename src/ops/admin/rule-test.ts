/*
 * POST /api/rules/<name>/test: runs a rule's current source on a sample, in
 * the production sandbox, as `switchyard rule test` does (src/rules/tester.ts):
 * in a rule host process of its own, so a test that runs out of memory or
 * time costs neither the running rules nor the broker. The host starts with
 * the first test and stops after a few idle minutes; tests run one at a time.
 */
import { RuleTester, type PrintedOutput, type TestInput } from '../../rules/tester.js'
import type { Limits } from '../../rules/validate.js'
import { encodePayload } from './http.js'

const IDLE_MS = 5 * 60_000

export interface TestedOutput {
  topic: string
  payload: string
  encoding: 'utf8' | 'base64'
  qos: 0 | 1 | 2
  retain: boolean
  properties?: PrintedOutput['properties']
}

/** `kind`: the rule did not load, the topic matches none of its filters, or the conversion failed. */
export type TestOutcome = { outputs: TestedOutput[] } | { error: { message: string, kind: 'load' | 'unmatched' | 'conversion' } }

export class RuleTestBench {
  readonly #limits: Limits
  readonly #maxPacketSize: number
  #tester: RuleTester | undefined
  /** The source each loaded rule was loaded from. */
  readonly #loaded = new Map<string, string>()
  #queue: Promise<unknown> = Promise.resolve()
  #idle: NodeJS.Timeout | undefined
  #closed = false

  constructor (limits: Limits, maxPacketSize: number) {
    this.#limits = limits
    this.#maxPacketSize = maxPacketSize
  }

  run (name: string, source: string, input: TestInput): Promise<TestOutcome> {
    const turn = this.#queue.then(() => this.#run(name, source, input))
    this.#queue = turn.catch(() => {})
    return turn
  }

  async close (): Promise<void> {
    this.#closed = true
    clearTimeout(this.#idle)
    await this.#queue
    await this.#stop()
  }

  async #run (name: string, source: string, input: TestInput): Promise<TestOutcome> {
    if (this.#closed) return { error: { message: 'the admin listener is closing', kind: 'conversion' } }
    clearTimeout(this.#idle)
    this.#tester ??= new RuleTester(this.#limits, this.#maxPacketSize)
    try {
      if (this.#loaded.get(name) !== source) {
        this.#loaded.delete(name)
        const loaded = await this.#tester.loadSource(name, source)
        if (!loaded.ok) return { error: { message: loaded.error, kind: 'load' } }
        this.#loaded.set(name, source)
      }
      const outcome = await this.#tester.run(name, input)
      if (!outcome.ok) return { error: { message: outcome.error, kind: outcome.unmatched ? 'unmatched' : 'conversion' } }
      return { outputs: outcome.outputs.map(toTested) }
    } finally {
      this.#idle = setTimeout(() => { this.#queue = this.#queue.then(() => this.#stop()) }, IDLE_MS)
      this.#idle.unref()
    }
  }

  async #stop (): Promise<void> {
    const tester = this.#tester
    this.#tester = undefined
    this.#loaded.clear()
    await tester?.close()
  }
}

function toTested (o: PrintedOutput): TestedOutput {
  // An object payload reaches here as bytes (the sandbox serializes it): text again when it is UTF-8.
  const payload = 'payload' in o ? { payload: o.payload, encoding: 'utf8' as const } : encodePayload(Buffer.from(o.payloadHex, 'hex'))
  return { topic: o.topic, ...payload, qos: o.qos, retain: o.retain, ...(o.properties === undefined ? {} : { properties: o.properties }) }
}
