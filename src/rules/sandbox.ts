/*
 * The only module that imports isolated-vm, and it is loaded only inside the
 * rule host process (host-main.ts), never in the broker: the isolated-vm README
 * advises keeping isolates "in a different nodejs process than other
 * critical infrastructure", since V8 can still be crashed from inside.
 *
 * Nothing of isolated-vm (Reference, ExternalCopy...) is ever handed to rule
 * code: values cross by copy only (README, Security).
 */
import { createRequire } from 'node:module'
import { CreationGate } from './isolate-pool.js'
import type { SandboxMessage, RawOutput, ConvertResult } from './protocol.js'
import { sourceUrl } from './typescript.js'
import { HostRuleStates, STATE_JS, type StateChanges } from './rule-state.js'

/** Every rule's ctx.state in this rule host (rule-state.ts); host-main.ts seeds and drops them. */
export const hostStates = new HostRuleStates()

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
  /** Object.prototype.toString's tag of convert: 'Function', 'AsyncFunction'... */
  convertKind: string
  /** typeof the default export, 'undefined' without one. */
  defaultType: string
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
// MQTT 5 properties an output may set: their types here, so that only plain
// data crosses; what MQTT can carry (wildcards, lengths, ranges) is checked
// by the broker (src/properties.ts).
const PROPERTY_NAMES = ['userProperties', 'contentType', 'responseTopic', 'correlationData', 'messageExpiryInterval', 'payloadFormatIndicator']
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v)
function properties (i, p) {
  if (!isObject(p)) bad(i, 'properties must be an object { ' + PROPERTY_NAMES.join(', ') + ' } (any of them)')
  const out = {}
  for (const name of Object.keys(p)) {
    const v = p[name]
    if (v === undefined) continue
    const at = 'properties.' + name + ': '
    switch (name) {
      case 'userProperties': {
        if (!isObject(v)) bad(i, at + 'must be an object of names to strings (or arrays of strings, for a name sent more than once)')
        const u = {}
        for (const key of Object.keys(v)) {
          const x = v[key]
          if (typeof x === 'string') u[key] = x
          else if (Array.isArray(x) && x.every(s => typeof s === 'string')) u[key] = x.slice()
          else bad(i, at + JSON.stringify(key) + ': must be a string or an array of strings')
        }
        out.userProperties = u
        break
      }
      case 'contentType':
      case 'responseTopic':
        if (typeof v !== 'string') bad(i, at + 'must be a string')
        out[name] = v
        break
      case 'correlationData':
        if (typeof v === 'string') out.correlationData = v
        else if (v instanceof Uint8Array) out.correlationData = new Uint8Array(v)
        else if (v instanceof ArrayBuffer) out.correlationData = new Uint8Array(v.slice(0))
        else bad(i, at + 'must be bytes (a Uint8Array) or a string (sent as UTF-8)')
        break
      case 'messageExpiryInterval':
        if (typeof v !== 'number') bad(i, at + 'must be a whole number of seconds')
        out[name] = v
        break
      case 'payloadFormatIndicator':
        if (typeof v !== 'boolean') bad(i, at + 'must be true (the payload is UTF-8 text) or false')
        out[name] = v
        break
      default: {
        const guess = PROPERTY_NAMES.find(n => n.toLowerCase() === name.toLowerCase())
        bad(i, at + 'not a property an output can set' + (guess ? '; did you mean ' + guess + '?' : '') + ' (the properties are ' + PROPERTY_NAMES.join(', ') + ')')
      }
    }
  }
  return out
}
function normalize (result) {
  if (result === null || result === undefined) return []
  if (typeof result.then === 'function') throw new TypeError('convert must return its outputs, not a Promise (rules have no async I/O)')
  const list = Array.isArray(result) ? result : [result]
  return list.map((o, i) => {
    if (o === null || typeof o !== 'object') bad(i, 'must be an object { topic, payload, qos?, retain?, properties? }')
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
    if (o.properties !== undefined) out.properties = properties(i, o.properties)
    return out
  })
}
const define = (name, value) => Object.defineProperty(globalThis, name, { value, writable: false, configurable: false, enumerable: false })
// ctx and ctx.state (rule-state.ts)
${STATE_JS}
define('__exports', () => ({
  topics: rule.topics, qos: rule.qos, limits: rule.limits, convertType: typeof rule.convert,
  // 'AsyncFunction', 'GeneratorFunction'...: only a plain function can return its outputs.
  convertKind: Object.prototype.toString.call(rule.convert).slice(8, -1),
  defaultType: 'default' in rule ? typeof rule.default : 'undefined'
}))
function one (msg) {
  __logs.length = 0
  msg.bytes = new Uint8Array(msg.bytes)
  // MQTT 5 properties; {} for a message without them (an MQTT 3.1.1 publisher's)
  if (msg.properties === undefined) msg.properties = {}
  else if (msg.properties.correlationData !== undefined) msg.properties.correlationData = new Uint8Array(msg.properties.correlationData)
  stateBegin()
  try {
    const outputs = normalize(rule.convert(msg, ctx))
    // Kept only now: a conversion that fails changes no state.
    const state = stateCommit()
    return state === undefined ? { outputs, logs: __logs.splice(0) } : { outputs, logs: __logs.splice(0), state }
  } catch (e) {
    return { error: describe(e), logs: __logs.splice(0) }
  }
}
// Converts messages in order until they are done or budgetMs has passed
// since the call began: a message is never started late, so the call's hard
// timeout (twice the budget) can only stop a message that ran past the
// budget itself. Results are kept in 'done' so that, if the call is stopped,
// the host can still collect what finished (__collect).
const done = []
define('__runBatch', function (msgs, budgetMs) {
  done.length = 0
  const started = Date.now()
  for (let i = 0; i < msgs.length; i++) {
    if (i > 0 && Date.now() - started >= budgetMs) break
    done.push(one(msgs[i]))
  }
  return done.splice(0)
})
define('__collect', () => done.splice(0))
`

// Isolates made at once (isolate-pool.ts): two cores here; more only raises the peak.
const creating = new CreationGate(4)

const MEMORY_ERROR = /memory limit/i
const TIMEOUT_ERROR = /timed out/i

/** One rule in its own isolate. Module-level state lives as long as the isolate. */
export class RuleSandbox {
  readonly #isolate: Isolate
  readonly #runBatch: Reference
  readonly #collect: Reference
  readonly #limits: SandboxLimits
  readonly exports: RuleExports
  readonly #name: string
  readonly #stateLoad: Reference
  /** The version of hostStates' copy this isolate holds (rule-state.ts): behind it, it is seeded before converting. */
  #stateVersion = 0

  private constructor (isolate: Isolate, fns: { runBatch: Reference, collect: Reference, stateLoad: Reference }, exports: RuleExports, limits: SandboxLimits, name: string) {
    this.#isolate = isolate
    this.#runBatch = fns.runBatch
    this.#collect = fns.collect
    this.#stateLoad = fns.stateLoad
    this.exports = exports
    this.#limits = limits
    this.#name = name
  }

  /** Compiles and evaluates a rule file. Throws an Error with a readable message on any problem. */
  static create (name: string, source: string, limits: SandboxLimits, onCatastrophicError: (message: string) => void): Promise<RuleSandbox> {
    return creating.run(() => RuleSandbox.#create(name, source, limits, onCatastrophicError))
  }

  static async #create (name: string, source: string, limits: SandboxLimits, onCatastrophicError: (message: string) => void): Promise<RuleSandbox> {
    const { Isolate } = loadIsolatedVm()
    const isolate = new Isolate({ memoryLimit: limits.memoryLimitMb, onCatastrophicError })
    let filename = `${name}.js`
    try {
      const context = await isolate.createContext()
      await context.eval(PRELUDE, { timeout: limits.timeoutMs })
      // A TypeScript rule names itself <name>.ts (typescript.ts), for its stack traces and errors.
      filename = sourceUrl(source) ?? filename
      const ruleModule = await isolate.compileModule(source, { filename })
      const imports = ruleModule.dependencySpecifiers
      if (imports.length > 0) {
        // `import { type X } from '...'` keeps its import once stripped; `import type` goes whole.
        const typeOnly = filename.endsWith('.ts') ? " (for types, write `import type { ... } from '...'`: it is removed when the rule loads)" : ''
        throw new Error(`rule files cannot import anything (found: ${imports.map(s => `'${s}'`).join(', ')}); the sandbox has no modules, filesystem or network${typeOnly}`)
      }
      await ruleModule.instantiate(context, () => { throw new Error('imports are not available in rules') })
      const wrapper = await isolate.compileModule(WRAPPER.replace('__RULE_NAME__', JSON.stringify(name)), { filename: 'switchyard-wrapper.js' })
      await wrapper.instantiate(context, specifier => {
        if (specifier === 'rule') return ruleModule
        throw new Error('imports are not available in rules')
      })
      // Top-level code runs under the same limits as convert().
      await wrapper.evaluate({ timeout: limits.timeoutMs })
      const exports = await context.eval('__exports()', { copy: true, timeout: limits.timeoutMs }) as RuleExports
      const runBatch = await context.global.get('__runBatch', { reference: true })
      const collect = await context.global.get('__collect', { reference: true })
      const stateLoad = await context.global.get('__stateLoad', { reference: true })
      return new RuleSandbox(isolate, { runBatch, collect, stateLoad }, exports, limits, name)
    } catch (err) {
      if (!isolate.isDisposed) isolate.dispose()
      throw new Error(describeFailure(err, limits, filename))
    }
  }

  get disposed (): boolean { return this.#isolate.isDisposed }

  /**
   * Converts messages in order, as few isolate calls as possible: one call
   * costs a thread hop (~100 µs here), so a backlog goes in one call.
   * Returns one result per message, or fewer if the isolate died of memory:
   * then the caller makes a new sandbox and goes on with the rest.
   */
  async convertBatch (msgs: SandboxMessage[]): Promise<ConvertResult[]> {
    const results: ConvertResult[] = []
    let rest = msgs
    while (rest.length > 0) {
      try {
        await this.#seedState()
        const batch = await this.#runBatch.apply(undefined, [rest, this.#limits.timeoutMs], {
          arguments: { copy: true },
          result: { copy: true },
          timeout: 2 * this.#limits.timeoutMs
        }) as RawResult[]
        results.push(...this.#keepState(batch.map(toResult)))
        rest = rest.slice(batch.length)
      } catch (err) {
        const message = (err as Error).message ?? String(err)
        // A memory-limit hit can surface as a timeout when the allocation
        // crosses the deadline first (docs/aedes-gaps.md#memory-limit-or-timeout-a-race); the disposed isolate decides.
        if (this.#isolate.isDisposed || MEMORY_ERROR.test(message)) {
          // The isolate, and what finished in this call, are gone. A batch
          // of one pins the culprit; a longer one is re-run by the caller.
          if (rest.length === 1) results.push({ kind: 'memory', error: `exceeded memoryLimitMb ${this.#limits.memoryLimitMb}: ${message}`, logs: [] })
          return results
        }
        // Stopped: keep what finished, charge the timeout to the message it
        // stopped, and go on with the rest.
        const finished = await this.#collect.apply(undefined, [], { arguments: { copy: true }, result: { copy: true }, timeout: this.#limits.timeoutMs }).catch(() => []) as RawResult[]
        results.push(...this.#keepState(finished.map(toResult)))
        rest = rest.slice(finished.length)
        results.push(TIMEOUT_ERROR.test(message)
          ? { kind: 'timeout', error: `exceeded timeoutMs ${this.#limits.timeoutMs}`, logs: [] }
          : { kind: 'error', error: message, logs: [] })
        rest = rest.slice(1)
      }
    }
    return results
  }

  dispose (): void {
    if (!this.#isolate.isDisposed) this.#isolate.dispose()
  }

  // A new isolate (or one whose rule was reloaded meanwhile) gets the rule's ctx.state first.
  async #seedState (): Promise<void> {
    const state = hostStates.get(this.#name)
    if (state === undefined || state.version === this.#stateVersion) return
    await this.#stateLoad.apply(undefined, [[...state.entries]], { arguments: { copy: true }, result: { copy: true }, timeout: this.#limits.timeoutMs })
    this.#stateVersion = state.version
  }

  // The isolate holds the changes already: the host's copy catches up, and stays level with it.
  #keepState (results: ConvertResult[]): ConvertResult[] {
    for (const r of results) {
      if (r.kind !== 'ok' || r.state === undefined) continue
      const level = (hostStates.get(this.#name)?.version ?? 0) === this.#stateVersion
      hostStates.apply(this.#name, r.state)
      if (level) this.#stateVersion = hostStates.get(this.#name)!.version
    }
    return results
  }
}

type RawResult = { outputs?: RawOutput[], error?: string, logs: Array<[string, string]>, state?: StateChanges }

function toResult (r: RawResult): ConvertResult {
  if (r.error !== undefined) return { kind: 'error', error: r.error, logs: r.logs }
  return r.state === undefined ? { kind: 'ok', outputs: r.outputs ?? [], logs: r.logs } : { kind: 'ok', outputs: r.outputs ?? [], logs: r.logs, state: r.state }
}

function describeFailure (err: unknown, limits: SandboxLimits, filename: string): string {
  const message = err instanceof Error ? err.message : String(err)
  if (MEMORY_ERROR.test(message)) return `loading exceeded memoryLimitMb ${limits.memoryLimitMb}`
  if (TIMEOUT_ERROR.test(message)) return `loading exceeded timeoutMs ${limits.timeoutMs} (top-level code runs under the same limit as convert)`
  // Keep the kind (SyntaxError, ReferenceError...): it tells the author where to look.
  const name = err instanceof Error ? err.name : ''
  // A CommonJS file fails at its first `module.exports`, `exports.x` or `require`.
  const commonJs = /^(?:ReferenceError: )?(module|exports|require) is not defined/.exec(message)
  if (commonJs) {
    return `rule files are ES modules, not CommonJS (${commonJs[1]} is not defined): ` +
      'export the rule with `export const topics = [...]` and `export function convert (msg) {...}`' +
      (commonJs[1] === 'require' ? ', and import nothing (the sandbox has no modules)' : '')
  }
  const described = name && name !== 'Error' && !message.startsWith(name) ? `${name}: ${message}` : message
  // Thrown by top-level code: where, in the rule's file (a .ts file's own line and column).
  const frame = err instanceof Error ? err.stack?.split('\n').find(l => l.includes(`${filename}:`))?.trim() : undefined
  return frame === undefined || message.includes(`[${filename}:`) ? described : `${described}\n    ${frame}`
}
