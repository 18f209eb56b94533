import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { startBroker, tempDir } from '../helpers/broker.js'
import { runCli } from '../helpers/cli.js'
import { captureLog } from '../helpers/log.js'
import { rule, until } from '../helpers/rules.js'

/** Runs `switchyard check` over a rules directory holding `files`. */
async function check (files: Record<string, string>) {
  const dir = tempDir()
  mkdirSync(path.join(dir, 'rules'))
  for (const [name, source] of Object.entries(files)) writeFileSync(path.join(dir, 'rules', name), source)
  const result = await runCli(['check'], dir)
  return { ...result, at: (name: string) => path.join(dir, 'rules', name) }
}

describe('rule-load errors name the cause', () => {
  test('CommonJS, topics as a string, a default export and an async convert', async () => {
    const result = await check({
      'cjs.js': `module.exports = { topics: ['a'], convert (msg) { return null } }`,
      'string.js': `export const topics = 'a/#'\nexport function convert () {}`,
      'default.js': `export const topics = ['a']\nexport default function convert () {}`,
      'async.js': `export const topics = ['a']\nexport async function convert () { return { topic: 'b', payload: 1 } }`
    })
    expect(result.stderr).toContain(`${result.at('cjs.js')}: rule files are ES modules, not CommonJS (module is not defined): export the rule with \`export const topics = [...]\` and \`export function convert (msg) {...}\``)
    expect(result.stderr).toContain(`${result.at('string.js')}: topics must be an array of MQTT topic filters, e.g. export const topics = ['a/#']; got a string, "a/#"`)
    expect(result.stderr).toContain(`${result.at('default.js')}: the default export is not used; export a named function convert: \`export function convert (msg) {...}\``)
    expect(result.stderr).toContain(`${result.at('async.js')}: convert is an async function: it must be synchronous`)
    expect(result.stderr).toContain('4 of 4 rule files failed to load')
    expect(result.code).toBe(1)
  })

  test('check says which files it ignores, and why', async () => {
    const result = await check({ 'ok.js': `export const topics = ['a']; export function convert () {}`, 'x.mjs': 'export const topics = []' })
    expect(result.stderr).toContain(`switchyard: warning: ${result.at('x.mjs')}: ignored: rule files are named <name>.js (they are ES modules all the same); rename it to x.js to load it`)
    expect(result.code).toBe(0)
  })

  test('the broker logs once that x.mjs and subdirectories are ignored', async () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'x.mjs'), `export const topics = ['a']; export function convert () {}`)
    mkdirSync(path.join(dir, 'sub'))
    writeFileSync(path.join(dir, 'sub', 'y.js'), `export const topics = ['a']; export function convert () {}`)
    const log = captureLog()
    const broker = await startBroker({ rules: { dir } }, { logger: log.logger })
    writeFileSync(path.join(dir, 'z.js'), `export const topics = ['a']; export function convert () {}`)
    await broker.reloadRules()
    await broker.reloadRules()
    const ignored = log.lines.filter(l => String(l.msg).startsWith('ignored in the rules directory'))
    expect(ignored).toHaveLength(2)
    expect(ignored).toEqual(expect.arrayContaining([
      expect.objectContaining({ level: 40, file: path.join(dir, 'sub'), reason: expect.stringMatching(/^subdirectories are not read/) }),
      expect.objectContaining({ level: 40, file: path.join(dir, 'x.mjs'), reason: expect.stringMatching(/rename it to x.js/) })
    ]))
    expect(broker.rules().map(r => r.name)).toEqual(['z'])
  })

  test('after a load error, lastErrors names the file in "file", never in "topic"', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'broken.js')
    writeFileSync(file, `export const topics = 'a/#'\nexport function convert () {}`)
    const broker = await startBroker({ rules: { dir } })
    await until(() => broker.rules().length === 1, 'the rule to be tried')
    expect(rule(broker, 'broken').lastErrors).toEqual([{ at: expect.any(String), file, error: expect.stringMatching(/^topics must be an array/) }])
  })
})
