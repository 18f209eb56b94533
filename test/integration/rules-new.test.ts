import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { runCli } from '../helpers/cli.js'

/** A directory with a switchyard.json whose rules.dir is `rules` (not created yet). */
function project (): string {
  const dir = tempDir('switchyard-new-')
  writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify({ rules: { dir: 'rules' } }))
  return dir
}

describe('switchyard rule new', () => {
  test.each([
    ['js', []],
    ['ts', ['--ts']]
  ])('writes rules/<name>.%s and its fixture, which pass rule test --all', async (ext, flags) => {
    const dir = project()
    const made = await runCli(['rule', 'new', 'greenhouse', '--topic', 'greenhouse/+/climate', ...flags], dir)
    expect(made.stderr).toBe('')
    expect(made.code).toBe(0)
    const file = path.join(dir, 'rules', `greenhouse.${ext}`)
    expect(made.stdout).toContain(`created ${file}\ncreated ${path.join(dir, 'rules', 'greenhouse.test.json')}\n`)
    expect(readFileSync(file, 'utf8')).toContain("export const topics = [\"greenhouse/+/climate\"]")
    if (ext === 'ts') expect(readFileSync(file, 'utf8')).toContain("import type { Message, Output } from 'switchyard-mqtt/rules'")

    const tested = await runCli(['rule', 'test', '--all'], dir)
    expect(tested.stdout).toContain('ok   greenhouse.test.json > a JSON payload is published under converted/')
    expect(tested.stdout).toMatch(/^2 passed, 0 failed$/m)
    expect(tested.code).toBe(0)

    // the "try it" line it prints works as printed
    const one = await runCli(['rule', 'test', file, '--topic', 'greenhouse/device1/climate', '--payload', '{"value":21.5}'], dir)
    expect(JSON.parse(one.stdout)).toEqual([{ topic: 'converted/greenhouse/device1/climate', qos: 0, retain: false, payload: '{"value":{"value":21.5}}' }])
  })

  test('# and + become levels of the fixture\'s sample topic', async () => {
    const dir = project()
    expect((await runCli(['rule', 'new', 'all', '--topic', '#'], dir)).code).toBe(0)
    expect(JSON.parse(readFileSync(path.join(dir, 'rules', 'all.test.json'), 'utf8')).cases[0].input.topic).toBe('example')
    expect((await runCli(['rule', 'test', '--all'], dir)).stdout).toMatch(/^2 passed, 0 failed$/m)
  })

  test('never overwrites: an existing rule of that name (.js, .ts or its fixture) stops it, and nothing is written', async () => {
    const dir = project()
    mkdirSync(path.join(dir, 'rules'))
    writeFileSync(path.join(dir, 'rules', 'mine.ts'), '// my own work')
    const again = await runCli(['rule', 'new', 'mine', '--topic', 'a/b'], dir)
    expect(again.code).toBe(1)
    expect(again.stderr).toContain(`switchyard: rule mine exists already (${path.join(dir, 'rules', 'mine.ts')}); nothing written`)
    expect(readFileSync(path.join(dir, 'rules', 'mine.ts'), 'utf8')).toBe('// my own work')
    expect(existsSync(path.join(dir, 'rules', 'mine.js'))).toBe(false)
    expect(existsSync(path.join(dir, 'rules', 'mine.test.json'))).toBe(false)

    expect((await runCli(['rule', 'new', 'fresh', '--topic', 'a/b'], dir)).code).toBe(0)
    const written = readFileSync(path.join(dir, 'rules', 'fresh.js'), 'utf8')
    const twice = await runCli(['rule', 'new', 'fresh', '--topic', 'c/d', '--ts'], dir)
    expect(twice.code).toBe(1)
    expect(readFileSync(path.join(dir, 'rules', 'fresh.js'), 'utf8')).toBe(written)
  })

  test.each([
    [['rule', 'new', 'a/b', '--topic', 'x'], 'rule name "a/b": use letters, digits, \'-\', \'_\' and \'.\', starting with a letter or digit'],
    [['rule', 'new', '_draft', '--topic', 'x'], 'rule name "_draft": use letters'],
    [['rule', 'new', 'x.js', '--topic', 'x'], 'rule name "x.js": give the name without an extension, e.g. x'],
    [['rule', 'new', 'x', '--topic', 'a/#/b'], '--topic "a/#/b": not a valid MQTT topic filter: "#" must be a whole level and the last one [MQTT-4.7.1]'],
    [['rule', 'new', 'x', '--topic', 'a+'], '--topic "a+": not a valid MQTT topic filter: "+" must be a whole level'],
    [['rule', 'new', 'x', '--topic', '$SYS/#'], '$SYS/ is the broker\'s own'],
    [['rule', 'new', 'x'], "'rule new' needs --topic <filter>"],
    [['rule', 'new', '--topic', 'x'], "'rule new' needs a name"],
    [['rule', 'new', 'x', '--topic', 'x', '--payload', 'y'], "--payload only applies to 'rule test'"]
  ])('%j is a usage error (exit 2): %s', async (args, message) => {
    const dir = project()
    const result = await runCli(args, dir)
    expect(result.stderr).toContain(message)
    expect(result.code).toBe(2)
    expect(existsSync(path.join(dir, 'rules'))).toBe(false)
  })
})
