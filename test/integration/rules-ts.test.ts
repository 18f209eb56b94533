import { execFile } from 'node:child_process'
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'
import { tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { runCli } from '../helpers/cli.js'
import { rule, startWithRules, until } from '../helpers/rules.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

// Types on most lines, so that a position shifted by stripping would show.
const RULE = `import type { Message, Output } from 'switchyard-mqtt/rules'

type Reading = { value: number, unit?: 'C' | 'F' }
export const topics: string[] = ['ts/+']
export function convert (msg: Message): Output {
  const reading: Reading = JSON.parse(msg.payload) as Reading
  if (typeof reading.value !== 'number') throw new TypeError(\`no value in \${msg.topic}\`)
  return { topic: 'ts-out/' + msg.topic.split('/')[1]!, payload: { value: reading.value } satisfies Record<string, number> }
}
`

/** `<file>:<line>:<column>` (from 1) of `token` in `source`. */
function position (file: string, source: string, token: string): string {
  const lines = source.split('\n')
  const line = lines.findIndex(l => l.includes(token))
  return `${file}:${line + 1}:${lines[line]!.indexOf(token) + 1}`
}

describe('TypeScript rule files', () => {
  test('rules/<name>.ts loads with its types stripped, converts, and its runtime errors point into the .ts source', async () => {
    const { broker } = await startWithRules({ 't.ts': RULE })
    expect(rule(broker, 't')).toMatchObject({ status: 'running', error: null, topics: ['ts/+'], file: expect.stringMatching(/t\.ts$/) })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('ts-out/#')
    await app.publishAsync('ts/1', '{"value":21.5}')
    expect((await inbox(app).waitFor(1))[0]).toMatchObject({ topic: 'ts-out/1', payload: '{"value":21.5}' })

    await app.publishAsync('ts/2', '{"temp":1}')
    await until(() => rule(broker, 't').failed === 1, 'the failure', 3000)
    const [error] = rule(broker, 't').lastErrors
    expect(error).toMatchObject({ topic: 'ts/2' })
    expect(error!.error).toContain('TypeError: no value in ts/2')
    expect(error!.error).toContain(`at Module.convert (${position('t.ts', RULE, 'new TypeError')})`)
  })

  test('a syntax error, TypeScript that stripping cannot remove (enum) and a top-level throw fail the load with the .ts line:column (and the fix); hot reload applies', async () => {
    const { broker, dir } = await startWithRules({ 't.ts': RULE })
    const file = path.join(dir, 't.ts')
    const broken = "export const topics: string[] = ['ts/+']\nexport const x: = 1\nexport function convert () { return null }\n"
    writeFileSync(file, broken)
    await until(() => rule(broker, 't').error !== null, 'the syntax error', 3000)
    expect(rule(broker, 't')).toMatchObject({ status: 'running', error: expect.stringMatching(/^reload failed; the previous version keeps running: t\.ts:2:17: SyntaxError: Unexpected token `=`/) })

    const withEnum = "export const topics = ['ts/+']\n  enum Level { Low, High }\nexport function convert () { return { topic: 'l', payload: Level.High } }\n"
    writeFileSync(file, withEnum)
    await until(() => rule(broker, 't').error?.includes('enum') === true, 'the enum error', 3000)
    expect(rule(broker, 't').error).toContain('t.ts:2:3: TypeScript that type stripping cannot remove: TypeScript enum is not supported in strip-only mode; use a plain object instead, e.g. const Level = { Low: 0, High: 1 } as const')

    const topLevel = "type N = number\nconst limit: N = 3\nexport const topics = ['ts/+']\nif (limit > 2) throw new RangeError('limit too high: ' + limit)\nexport function convert () { return null }\n"
    writeFileSync(file, topLevel)
    await until(() => rule(broker, 't').error?.includes('limit too high') === true, 'the top-level error', 3000)
    expect(rule(broker, 't').error).toContain(`RangeError: limit too high: 3\n    at ${position('t.ts', topLevel, 'new RangeError')}`)

    writeFileSync(file, RULE.replace("'ts-out/'", "'ts-v2/'"))
    await until(() => rule(broker, 't').error === null, 'the fixed file', 3000)
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('ts-v2/#')
    await app.publishAsync('ts/3', '{"value":1}')
    expect((await inbox(app).waitFor(1))[0]!.topic).toBe('ts-v2/3')
  })

  test('a rule moved from x.js to x.ts is the same rule, reloaded from its new file', async () => {
    const { broker, dir } = await startWithRules({ 't.js': RULE.replace(/^import type .*$/m, '').replace(/: Message|: Output|: string\[\]|: Reading| as Reading|!| satisfies Record<string, number>/g, '').replace(/^type .*$/m, '') })
    expect(rule(broker, 't')).toMatchObject({ status: 'running', file: expect.stringMatching(/t\.js$/) })
    const loadedAt = rule(broker, 't').loadedAt
    writeFileSync(path.join(dir, 't.ts'), RULE)
    rmSync(path.join(dir, 't.js'))
    await until(() => rule(broker, 't').loadedAt !== loadedAt && rule(broker, 't').file.endsWith('t.ts'), 'the .ts file', 3000)
    expect(broker.rules().map(r => r.name)).toEqual(['t'])
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('ts-out/#')
    await app.publishAsync('ts/9', '{"value":2}')
    expect((await inbox(app).waitFor(1))[0]).toMatchObject({ topic: 'ts-out/9', payload: '{"value":2}' })
  })

  test('a value import from a .ts rule is refused, and the error says to write `import type`', async () => {
    const { broker } = await startWithRules({ 'i.ts': "import { type Message } from 'switchyard-mqtt/rules'\nexport const topics = ['i']\nexport function convert (m: Message) { return null }\n" })
    expect(rule(broker, 'i')).toMatchObject({ status: 'failed', error: expect.stringContaining("for types, write `import type { ... } from '...'`") })
  })

  test('x.js and x.ts side by side are one rule, x.js; declaration files and .mts are not rules', async () => {
    const js = "export const topics = ['both']; export function convert () { return { topic: 'from', payload: 'js' } }"
    const { broker } = await startWithRules({ 'both.js': js, 'both.ts': js.replace("'js'", "'ts'"), 'types.d.ts': 'export type A = 1', 'other.mts': js })
    expect(broker.rules().map(r => [r.name, path.basename(r.file)])).toEqual([['both', 'both.js']])
    const { ignoredReason, pickRuleFiles } = await import('../../src/rules/loader.js')
    expect(pickRuleFiles(['both.js', 'both.ts', 'types.d.ts', 'solo.ts'])).toEqual({
      files: ['both.js', 'solo.ts'],
      hidden: [{ file: 'both.ts', reason: 'both.js is also there, and one name is one rule: both.ts is not loaded; remove one of the two' }]
    })
    expect(ignoredReason({ name: 'other.mts', isDirectory: () => false })).toBe('TypeScript rule files are named <name>.ts (ES modules all the same); rename it to other.ts to load it')
  })

  test('switchyard rule test runs a .ts file, and --all runs <name>.test.json against <name>.ts', async () => {
    const dir = tempDir()
    mkdirSync(path.join(dir, 'rules'))
    writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify({ rules: { dir: 'rules' } }))
    writeFileSync(path.join(dir, 'rules', 't.ts'), RULE)
    writeFileSync(path.join(dir, 'rules', 't.test.json'), JSON.stringify({
      cases: [
        { name: 'a reading', input: { topic: 'ts/7', payload: '{"value":3}' }, expect: [{ topic: 'ts-out/7', payload: { value: 3 } }] },
        { name: 'no value', input: { topic: 'ts/7', payload: '{}' }, expectError: 'no value in ts/7' }
      ]
    }))
    const one = await runCli(['rule', 'test', 'rules/t.ts', '--topic', 'ts/1', '--payload', '{}'], dir)
    expect(one.code).toBe(1)
    expect(one.stderr).toContain(`switchyard: t: TypeError: no value in ts/1\n    at Module.convert (${position('t.ts', RULE, 'new TypeError')})`)
    const all = await runCli(['rule', 'test', '--all'], dir)
    expect(all.stdout).toContain('ok   t.test.json > a reading')
    expect(all.stdout).toMatch(/^2 passed, 0 failed$/m)
    expect(all.code).toBe(0)

    // switchyard check loads it too, and names the broken one's line and column
    writeFileSync(path.join(dir, 'rules', 'broken.ts'), 'export const topics: string[] = []\nexport const x: = 1\n')
    const check = await runCli(['check'], dir)
    expect(check.code).toBe(1)
    expect(check.stderr + check.stdout).toContain('broken.ts:2:17: SyntaxError')
    expect(check.stderr + check.stdout).not.toContain('t.ts')
  })
})

describe('switchyard-mqtt/rules: the published types', () => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')

  /** A project that depends on switchyard-mqtt (this checkout, built), with one rule file; tsc's exit code and output. */
  async function typecheck (rule: string): Promise<{ code: number, out: string }> {
    const dir = tempDir('switchyard-types-')
    mkdirSync(path.join(dir, 'node_modules'))
    symlinkSync(ROOT, path.join(dir, 'node_modules', 'switchyard-mqtt'), 'dir')
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, types: [] },
      files: ['rules/r.ts']
    }))
    mkdirSync(path.join(dir, 'rules'))
    writeFileSync(path.join(dir, 'rules', 'r.ts'), rule)
    return promisify(execFile)(process.execPath, [tsc, '-p', dir]).then(() => ({ code: 0, out: '' }), (err: { code: number, stdout: string }) => ({ code: err.code, out: err.stdout }))
  }

  test("import type { Message, Output, Context } from 'switchyard-mqtt/rules' type-checks a rule with tsc", async () => {
    const ok = await typecheck(RULE + `
import type { Context, Convert } from 'switchyard-mqtt/rules'
export const withState: Convert = (msg, ctx: Context) => {
  const last = ctx.state.get<number>('last') ?? 0
  ctx.state.set('last', msg.bytes.length)
  return [{ topic: 'delta', payload: msg.bytes.length - last, qos: 1, properties: { correlationData: 'x', userProperties: { a: ['b'] } } }]
}
`)
    expect(ok).toEqual({ code: 0, out: '' })
  })

  test('a mistake in a rule (a misspelt output field, a wrong QoS) fails the type check', async () => {
    const rule = (output: string) => `import type { Message, Output } from 'switchyard-mqtt/rules'
export const topics = ['a']
export function convert (msg: Message): Output { return ${output} }
`
    const [misspelt, qos] = await Promise.all([typecheck(rule('{ topik: msg.topic, payload: 1 }')), typecheck(rule('{ topic: msg.topic, payload: 1, qos: 3 }'))])
    expect(misspelt.code).not.toBe(0)
    expect(misspelt.out).toContain("'topik' does not exist in type 'Output'")
    expect(qos.code).not.toBe(0)
    expect(qos.out).toContain("Type '3' is not assignable")
  })
})
