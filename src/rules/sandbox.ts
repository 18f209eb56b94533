/*
 * The only module that imports isolated-vm, and it is loaded only inside the
 * rule host process (host.ts), never in the broker: the isolated-vm README
 * advises keeping isolates "in a different nodejs process than other
 * critical infrastructure", since V8 can still be crashed from inside.
 *
 * Nothing of isolated-vm (Reference, ExternalCopy...) is ever handed to rule
 * code: values cross by copy only (README, Security).
 */
import { createRequire } from 'node:module'
import type { RuleMessage, RawOutput, ConvertResult } from './protocol.js'

// The slice of the isolated-vm API used here, declared locally so that the
// build does not depend on which of the two aliased versions is installed.
interface Ivm {
  Isolate: new (options: { memoryLimit: number, onCatastrophicError?: (message: string) => void }) => Isolate
}
interface Isolate {
  readonly isDisposed: boolean
  createContext(): Promise<Context>
  compileModule(code: string, options: { filename: string }): Promise<Module>
  dispose(): void
}
interface Context {
  readonly global: Reference
  eval(code: string, options?: { copy?: boolean, timeout?: number }): Promise<unknown>
}
interface Module {
  readonly dependencySpecifiers: string[]
  instantiate(context: Context, resolve: (specifier: string) => Module): Promise<void>
  evaluate(options?: { timeout?: number }): Promise<unknown>
}
interface Reference {
  get(property: string, options?: { reference?: boolean }): Promise<Reference>
  apply(receiver: undefined, args: unknown[], options: { arguments: { copy: true }, result: { copy: true }, timeout: number }): Promise<unknown>
}

let ivm: Ivm | undefined

/**
 * isolated-vm 5.0.4 is the last release for Node 20 (ABI 115) and builds
 * from source; 6.x ships prebuilt binaries for Node 22 and 24. Both are
 * optional dependencies under aliases; load the one for this Node.
 */
export function loadIsolatedVm (): Ivm {
  if (ivm) return ivm
  const require = createRequire(import.meta.url)
  const wanted = Number(process.versions.modules) <= 115 ? 'isolated-vm-5' : 'isolated-vm-6'
  try {
    ivm = require(wanted) as Ivm
  } catch (err) {
    throw new Error(`cannot load ${wanted} (isolated-vm) for Node ${process.version}: ${(err as Error).message}. ` +
      'Reinstall with `npm ci` on this Node version; on Node 20 a C++ toolchain (python3, make, g++) is needed to build it', { cause: err })
  }
  return ivm
}

export interface SandboxLimits { timeoutMs: number, memoryLimitMb: number }

/** What a rule module exports, as plain data. */
export interface RuleExports {
  topics: unknown
  qos: unknown
  limits: unknown
  convertType: string
}

// Runs before the rule module: give it a console that collects lines, and
// remove what would let it step outside the memory accounting.
const PRELUDE = `
'use strict'
const __logs = []
globalThis.__logs = __logs
const __fmt = (a) => {
  if (typeof a === 'string') return a
  if (a instanceof Error) return a.stack || String(a)
  try { const s = JSON.stringify(a); return s === undefined ? String(a) : s } catch { return String(a) }
}
const __line = (level) => (...args) => { if (__logs.length < 100) __logs.push([level, args.map(__fmt).join(' ').slice(0, 2000)]) }
globalThis.console = { log: __line('info'), info: __line('info'), debug: __line('debug'), warn: __line('warn'), error: __line('error') }
// WebAssembly memory is allocated outside the V8 heap limit.
delete globalThis.WebAssembly
`

// The wrapper imports the rule and exposes one entry point that normalizes
// outputs inside the isolate, so only plain data crosses back.
const WRAPPER = `
import * as rule from 'rule'
// Stack frames from the rule file only: the wrapper's are noise to the author.
const frames = (e) => (e.stack || '').split('\\n').slice(1).filter(l => !l.includes('switchyard-wrapper')).slice(0, 3)
const describe = (e) => e instanceof Error ? [(e.name || 'Error') + ': ' + e.message, ...frames(e)].join('\\n') : 'thrown: ' + (typeof e === 'string' ? e : JSON.stringify(e))
const bad = (i, what) => { throw new TypeError('output ' + i + ': ' + what) }
function normalize (result) {
  if (result === null || result === undefined) return []
  if (typeof result.then === 'function') throw new TypeError('convert must return its outputs, not a Promise (rules have no async I/O)')
  const list = Array.isArray(result) ? result : [result]
  return list.map((o, i) => {
    if (o === null || typeof o !== 'object') bad(i, 'must be an object { topic, payload, qos?, retain? }')
    if (typeof o.topic !== 'string' || o.topic.length === 0) bad(i, 'topic must be a non-empty string')
    if (o.payload === undefined) bad(i, 'payload is missing (use "" for an empty payload)')
    let payload
    if (typeof o.payload === 'string') payload = o.payload
    else if (o.payload instanceof Uint8Array) payload = new Uint8Array(o.payload)
    else if (o.payload instanceof ArrayBuffer) payload = new Uint8Array(o.payload.slice(0))
    else payload = JSON.stringify(o.payload)
    if (payload === undefined) bad(i, 'payload cannot be sent as JSON')
    const out = { topic: o.topic, payload }
    if (o.qos !== undefined) { if (o.qos !== 0 && o.qos !== 1 && o.qos !== 2) bad(i, 'qos must be 0, 1 or 2'); out.qos = o.qos }
    if (o.retain !== undefined) { if (typeof o.retain !== 'boolean') bad(i, 'retain must be true or false'); out.retain = o.retain }
    return out
  })
}
const define = (name, value) => Object.defineProperty(globalThis, name, { value, writable: false, configurable: false, enumerable: false })
define('__exports', () => ({
  topics: rule.topics, qos: rule.qos, limits: rule.limits, convertType: typeof rule.convert
}))
define('__run', function (msg) {
  __logs.length = 0
  msg.bytes = new Uint8Array(msg.bytes)
  try {
    return { outputs: normalize(rule.convert(msg)), logs: __logs.splice(0) }
  } catch (e) {
    return { error: describe(e), logs: __logs.splice(0) }
  }
})
`

const MEMORY_ERROR = /memory limit/i
const TIMEOUT_ERROR = /timed out/i

/** One rule in its own isolate. Module-level state lives as long as the isolate. */
export class RuleSandbox {
  readonly #isolate: Isolate
  readonly #run: Reference
  readonly #limits: SandboxLimits
  readonly exports: RuleExports

  private constructor (isolate: Isolate, run: Reference, exports: RuleExports, limits: SandboxLimits) {
    this.#isolate = isolate
    this.#run = run
    this.exports = exports
    this.#limits = limits
  }

  /** Compiles and evaluates a rule file. Throws an Error with a readable message on any problem. */
  static async create (name: string, source: string, limits: SandboxLimits, onCatastrophicError: (message: string) => void): Promise<RuleSandbox> {
    const { Isolate } = loadIsolatedVm()
    const isolate = new Isolate({ memoryLimit: limits.memoryLimitMb, onCatastrophicError })
    try {
      const context = await isolate.createContext()
      await context.eval(PRELUDE, { timeout: limits.timeoutMs })
      const ruleModule = await isolate.compileModule(source, { filename: `${name}.js` })
      const imports = ruleModule.dependencySpecifiers
      if (imports.length > 0) {
        throw new Error(`rule files cannot import anything (found: ${imports.map(s => `'${s}'`).join(', ')}); the sandbox has no modules, filesystem or network`)
      }
      await ruleModule.instantiate(context, () => { throw new Error('imports are not available in rules') })
      const wrapper = await isolate.compileModule(WRAPPER, { filename: 'switchyard-wrapper.js' })
      await wrapper.instantiate(context, specifier => {
        if (specifier === 'rule') return ruleModule
        throw new Error('imports are not available in rules')
      })
      // Top-level code runs under the same limits as convert().
      await wrapper.evaluate({ timeout: limits.timeoutMs })
      const exports = await context.eval('__exports()', { copy: true, timeout: limits.timeoutMs }) as RuleExports
      const run = await context.global.get('__run', { reference: true })
      return new RuleSandbox(isolate, run, exports, limits)
    } catch (err) {
      if (!isolate.isDisposed) isolate.dispose()
      throw new Error(describeFailure(err, limits))
    }
  }

  get disposed (): boolean { return this.#isolate.isDisposed }

  async convert (msg: RuleMessage): Promise<ConvertResult> {
    // One call per message, so timeoutMs is exactly the per-message budget.
    try {
      const result = await this.#run.apply(undefined, [msg], {
        arguments: { copy: true },
        result: { copy: true },
        timeout: this.#limits.timeoutMs
      }) as { outputs?: RawOutput[], error?: string, logs: Array<[string, string]> }
      return result.error !== undefined
        ? { kind: 'error', error: result.error, logs: result.logs }
        : { kind: 'ok', outputs: result.outputs ?? [], logs: result.logs }
    } catch (err) {
      const message = (err as Error).message ?? String(err)
      // A memory-limit hit can surface as a timeout when the allocation
      // crosses the deadline first (PITFALLS.md); the disposed isolate decides.
      if (this.#isolate.isDisposed || MEMORY_ERROR.test(message)) {
        return { kind: 'memory', error: `exceeded memoryLimitMb ${this.#limits.memoryLimitMb}: ${message}`, logs: [] }
      }
      if (TIMEOUT_ERROR.test(message)) {
        return { kind: 'timeout', error: `exceeded timeoutMs ${this.#limits.timeoutMs}`, logs: [] }
      }
      return { kind: 'error', error: message, logs: [] }
    }
  }

  dispose (): void {
    if (!this.#isolate.isDisposed) this.#isolate.dispose()
  }
}

function describeFailure (err: unknown, limits: SandboxLimits): string {
  const message = err instanceof Error ? err.message : String(err)
  if (MEMORY_ERROR.test(message)) return `loading exceeded memoryLimitMb ${limits.memoryLimitMb}`
  if (TIMEOUT_ERROR.test(message)) return `loading exceeded timeoutMs ${limits.timeoutMs} (top-level code runs under the same limit as convert)`
  // Keep the kind (SyntaxError, ReferenceError...): it tells the author where to look.
  const name = err instanceof Error ? err.name : ''
  return name && name !== 'Error' && !message.startsWith(name) ? `${name}: ${message}` : message
}
