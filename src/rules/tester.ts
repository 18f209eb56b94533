/*
 * `switchyard rule test`: ThingsBoard's "Test decoder function", but from the
 * command line and in CI, running the production sandbox in the production
 * rule host process (so an isolate that dies of memory cannot take the CLI
 * down or spoil its exit code: docs/aedes-gaps.md#segfault-on-exit-after-a-memory-disposal).
 */
import { readdir, readFile } from 'node:fs/promises'
import { isDeepStrictEqual } from 'node:util'
import path from 'node:path'
import { pino } from 'pino'
import { RuleHostProcess } from './host-process.js'
import { parseFixture, type FixtureCase } from './fixtures.js'
import { ignoredReason, pickRuleFiles, ruleName } from './loader.js'
import { outputsProblem, resolveOutput, type OutputMessage } from './outputs.js'
import type { LoadedMeta, RawProperties, RuleMessage } from './protocol.js'
import { checkProperties } from '../properties.js'
import type { Limits } from './validate.js'
import { ruleModuleSource } from './typescript.js'
import { topicMatches } from '../topics.js'

export interface TestInput {
  topic: string
  payload?: string
  payloadHex?: string
  clientId?: string | null
  username?: string | null
  qos?: 0 | 1 | 2
  retain?: boolean
  properties?: TestProperties
}

/**
 * MQTT 5 properties as fixtures and the command line write them, and as
 * outputs are printed: correlation data as text (`correlationData`, UTF-8)
 * or as bytes (`correlationDataHex`), as payloads are.
 */
export interface TestProperties {
  userProperties?: Record<string, string | string[]>
  contentType?: string
  responseTopic?: string
  correlationData?: string
  correlationDataHex?: string
  messageExpiryInterval?: number
  payloadFormatIndicator?: boolean
}

/** An output as printed: text payloads as `payload`, binary ones as `payloadHex`; `properties` when it has any. */
export type PrintedOutput = { topic: string, qos: 0 | 1 | 2, retain: boolean, properties?: TestProperties } & ({ payload: string } | { payloadHex: string })

/** `unmatched`: the input's topic matches none of the rule's filters, so the broker would never route it to the rule. */
export type RunOutcome = { ok: true, outputs: PrintedOutput[] } | { ok: false, error: string, unmatched?: true }

export interface CaseReport { file: string, name: string, passed: boolean, detail?: string }

export class RuleTester {
  readonly #host: RuleHostProcess
  readonly #limits: Limits
  readonly #maxPacketSize: number
  readonly #meta = new Map<string, LoadedMeta>()

  constructor (limits: Limits, maxPacketSize: number) {
    this.#limits = limits
    this.#maxPacketSize = maxPacketSize
    this.#host = new RuleHostProcess({ logger: pino({ level: 'silent' }) })
  }

  /** Loads a rule file (.js, or .ts with its types stripped); its name is the file name without the extension. */
  async load (file: string): Promise<{ ok: true, name: string } | { ok: false, error: string }> {
    const name = ruleName(file)
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      return { ok: false, error: `cannot read ${file}: ${(err as Error).message}` }
    }
    const module = ruleModuleSource(file, text)
    if ('error' in module) return { ok: false, error: module.error }
    return this.loadSource(name, module.source)
  }

  /** Loads (or replaces) a rule from its source (the admin API's rule test: a running rule's source). */
  async loadSource (name: string, source: string): Promise<{ ok: true, name: string } | { ok: false, error: string }> {
    const outcome = await this.#host.load(name, source, this.#limits)
    if (!outcome.ok) return outcome
    this.#meta.set(name, outcome.meta)
    return { ok: true, name }
  }

  run (name: string, input: TestInput): Promise<RunOutcome> {
    const meta = this.#meta.get(name)
    if (!meta) return Promise.resolve({ ok: false, error: `rule ${name} is not loaded` })
    // Only what the broker would route: a test must not pass on a message the rule never sees.
    if (!meta.topics.some(f => topicMatches(f, input.topic))) {
      return Promise.resolve({ ok: false, unmatched: true, error: `topic ${JSON.stringify(input.topic)} matches none of the rule's filters (${meta.topics.join(', ')}): the broker would never give this message to the rule` })
    }
    const bytes = input.payloadHex !== undefined ? Buffer.from(input.payloadHex, 'hex') : Buffer.from(input.payload ?? '')
    const qos = input.qos ?? 0
    // Only what a client could publish: checked as broker.publish() checks them.
    const properties = inputProperties(input.properties)
    if ('problem' in properties) return Promise.resolve({ ok: false, error: `the input's ${properties.problem}` })
    const msg: RuleMessage = {
      topic: input.topic,
      bytes: Uint8Array.prototype.slice.call(bytes),
      qos,
      retain: input.retain ?? false,
      clientId: input.clientId ?? null,
      username: input.username ?? null,
      timestamp: Date.now(),
      ...(properties.properties === undefined ? {} : { properties: properties.properties })
    }
    return new Promise(resolve => {
      this.#host.convert(name, msg, result => {
        if (result.kind !== 'ok') return resolve({ ok: false, error: result.kind === 'error' ? result.error : `${result.kind}: ${result.error}` })
        const problem = outputsProblem(result.outputs, this.#maxPacketSize)
        if (problem) return resolve({ ok: false, error: problem })
        resolve({ ok: true, outputs: result.outputs.map(o => printable(resolveOutput(o, meta.qos, qos))) })
      })
    })
  }

  /** Runs every `<name>.test.json` in `dir` against `<name>.js` (or `<name>.ts`), cases in order, on one loaded instance per file. */
  async runFixtures (dir: string): Promise<CaseReport[]> {
    const reports: CaseReport[] = []
    const entries = await readdir(dir)
    const ruleFiles = new Map(pickRuleFiles(entries).files.map(f => [ruleName(f), f]))
    const files = entries.filter(f => f.endsWith('.test.json')).sort()
    for (const fixture of files) {
      const base = fixture.replace(/\.test\.json$/, '')
      const ruleFile = ruleFiles.get(base) ?? `${base}.js`
      const where = path.join(dir, fixture)
      if (base.startsWith('.') || base.startsWith('_')) continue
      let parsed: ReturnType<typeof parseFixture>
      try {
        parsed = parseFixture(await readFile(where, 'utf8'))
      } catch (err) {
        parsed = { problems: [(err as Error).message] }
      }
      if ('problems' in parsed) {
        reports.push({ file: fixture, name: '(fixture file)', passed: false, detail: parsed.problems.map(p => `${where}: ${p}`).join('\n     ') })
        continue
      }
      const { cases } = parsed
      const loaded = await this.load(path.join(dir, ruleFile))
      if (!loaded.ok) {
        reports.push({ file: fixture, name: '(load)', passed: false, detail: loaded.error })
        continue
      }
      for (const [i, c] of cases.entries()) {
        const outcome = await this.run(loaded.name, c.input)
        reports.push({ file: fixture, name: c.name ?? `case ${i + 1}`, ...judge(c, outcome) })
      }
    }
    return reports
  }

  /** Loads every rule file in `dir`; returns the ones that fail, with why, and what the broker would not load (`x.mjs`, subdirectories). */
  async checkDir (dir: string): Promise<{ checked: number, failures: Array<{ file: string, error: string }>, ignored: Array<{ file: string, reason: string }> }> {
    let files: string[]
    const ignored: Array<{ file: string, reason: string }> = []
    try {
      const dirents = (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name < b.name ? -1 : 1)
      for (const d of dirents) {
        const reason = ignoredReason(d)
        if (reason !== undefined) ignored.push({ file: path.join(dir, d.name), reason })
      }
      const picked = pickRuleFiles(dirents.filter(d => !d.isDirectory()).map(d => d.name))
      for (const s of picked.hidden) ignored.push({ file: path.join(dir, s.file), reason: s.reason })
      files = picked.files
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { checked: 0, failures: [], ignored }
      throw err
    }
    const failures: Array<{ file: string, error: string }> = []
    for (const f of files) {
      const loaded = await this.load(path.join(dir, f))
      if (!loaded.ok) failures.push({ file: path.join(dir, f), error: loaded.error })
    }
    return { checked: files.length, failures, ignored }
  }

  close (): Promise<void> {
    return this.#host.close()
  }
}

function printable (o: OutputMessage): PrintedOutput {
  const base = { topic: o.topic, qos: o.qos, retain: o.retain }
  const printed: PrintedOutput = typeof o.payload === 'string' ? { ...base, payload: o.payload } : { ...base, payloadHex: Buffer.from(o.payload).toString('hex') }
  if (o.properties !== undefined) printed.properties = printableProperties(o.properties)
  return printed
}

function printableProperties (p: RawProperties): TestProperties {
  const { correlationData, ...rest } = p
  if (correlationData === undefined) return rest
  return typeof correlationData === 'string' ? { ...rest, correlationData } : { ...rest, correlationDataHex: Buffer.from(correlationData).toString('hex') }
}

/** A test input's properties as the rule host takes them (correlation data as bytes), checked. */
function inputProperties (p: TestProperties | undefined): { properties: RuleMessage['properties'] } | { problem: string } {
  if (p === undefined) return { properties: undefined }
  const { correlationDataHex, ...rest } = p
  if (correlationDataHex !== undefined && rest.correlationData !== undefined) return { problem: 'properties: give correlationData (text) or correlationDataHex, not both' }
  const checked = checkProperties(correlationDataHex === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationDataHex, 'hex') })
  if ('problem' in checked) return checked
  if (checked.properties === undefined) return { properties: undefined }
  const { correlationData, ...plain } = checked.properties
  return { properties: { ...plain, ...(correlationData === undefined ? {} : { correlationData: Uint8Array.prototype.slice.call(correlationData) }) } as RuleMessage['properties'] }
}

/** Properties compared as bytes: correlation data as hex, whichever way it was written or printed. */
function comparable (p: TestProperties): TestProperties {
  const { correlationData, ...rest } = p
  return correlationData === undefined ? rest : { ...rest, correlationDataHex: Buffer.from(correlationData).toString('hex') }
}

function judge (c: FixtureCase, outcome: RunOutcome): { passed: boolean, detail?: string } {
  if (!outcome.ok && outcome.unmatched) return { passed: false, detail: outcome.error }
  if (c.expectError !== undefined) {
    if (outcome.ok) return { passed: false, detail: `expected an error containing ${JSON.stringify(c.expectError)}, got outputs ${JSON.stringify(outcome.outputs)}` }
    return outcome.error.includes(c.expectError) ? { passed: true } : { passed: false, detail: `expected an error containing ${JSON.stringify(c.expectError)}, got: ${outcome.error}` }
  }
  if (!outcome.ok) return { passed: false, detail: outcome.error }
  const expected = c.expect ?? []
  if (expected.length !== outcome.outputs.length) {
    return { passed: false, detail: `expected ${expected.length} outputs, got ${outcome.outputs.length}: ${JSON.stringify(outcome.outputs)}` }
  }
  for (const [i, want] of expected.entries()) {
    const got = outcome.outputs[i]!
    const mismatch = outputMismatch(want, got)
    if (mismatch) return { passed: false, detail: `output ${i}: ${mismatch}; got ${JSON.stringify(got)}` }
  }
  return { passed: true }
}

// A JSON-valued expected payload is compared as JSON; a string exactly.
function outputMismatch (want: NonNullable<FixtureCase['expect']>[number], got: PrintedOutput): string | undefined {
  if (want.topic !== got.topic) return `topic ${JSON.stringify(got.topic)} is not ${JSON.stringify(want.topic)}`
  if (want.qos !== undefined && want.qos !== got.qos) return `qos ${got.qos} is not ${want.qos}`
  if (want.retain !== undefined && want.retain !== got.retain) return `retain ${got.retain} is not ${want.retain}`
  if (want.properties !== undefined) {
    // Exactly: the output has these properties and no others.
    const wanted = comparable({ ...want.properties, ...(want.properties.correlationDataHex === undefined ? {} : { correlationDataHex: want.properties.correlationDataHex.toLowerCase() }) })
    const actual = comparable(got.properties ?? {})
    if (!isDeepStrictEqual(actual, wanted)) return `properties ${JSON.stringify(actual)} are not ${JSON.stringify(wanted)}`
  }
  if (want.payloadHex !== undefined) {
    return 'payloadHex' in got && got.payloadHex === want.payloadHex.toLowerCase() ? undefined : `payload is not hex ${want.payloadHex}`
  }
  if (want.payload === undefined) return undefined
  if (!('payload' in got)) return 'payload is binary; expect it with payloadHex'
  if (typeof want.payload === 'string') return got.payload === want.payload ? undefined : `payload is not ${JSON.stringify(want.payload)}`
  let parsed: unknown
  try { parsed = JSON.parse(got.payload) } catch { return 'payload is not JSON' }
  return isDeepStrictEqual(parsed, want.payload) ? undefined : `payload is not ${JSON.stringify(want.payload)}`
}
