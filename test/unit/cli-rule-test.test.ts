import path from 'node:path'
import { describe, expect, test } from 'vitest'
import type { RuleTestOptions } from '../../src/cli/args.js'
import { runRuleTest } from '../../src/cli/rule-test.js'
import { parseConfig } from '../../src/config.js'
import { memoryOutput, scratchDir } from '../helpers/cli-io.js'

/*
 * What `switchyard rule test` refuses before it loads a rule, so without
 * the rule host. Running rules needs the real host: the integration tests
 * (test/integration/rules-cli.test.ts) run those through the CLI.
 */
async function ruleTest (file: string | undefined, options: Partial<RuleTestOptions>) {
  const io = memoryOutput()
  const code = await runRuleTest(parseConfig({}, { baseDir: scratchDir() }), file, { all: false, ...options }, io)
  return { code, stdout: io.stdout, stderr: io.stderr }
}

const usage = (problem: string) => ({ code: 2, stdout: '', stderr: `switchyard: ${problem}\nTry 'switchyard --help'.\n` })

describe('switchyard rule test: usage errors, in process', () => {
  test.each<[string | undefined, Partial<RuleTestOptions>, string]>([
    ['r.js', { all: true }, "'rule test --all' takes no file: it runs every fixture in rules.dir"],
    [undefined, { topic: 't', payload: '' }, "'rule test' needs a rule file, or --all"],
    ['r.js', { payload: '' }, "'rule test' needs --topic <topic>"],
    ['r.js', { topic: 't', payload: 'a', payloadHex: '00' }, 'give --payload or --payload-hex, not both'],
    ['r.js', { topic: 't' }, "'rule test' needs --payload <text> or --payload-hex <hex> (--payload '' for an empty payload)"],
    ['r.js', { topic: 't', payloadHex: 'abc' }, '--payload-hex needs an even number of hex digits'],
    ['r.js', { topic: 't', payloadHex: 'zz' }, '--payload-hex needs an even number of hex digits'],
    ['r.js', { topic: 't', payload: '', qos: '3' }, '--qos must be 0, 1 or 2'],
    ['r.js', { topic: 't', payload: '', qos: 'one' }, '--qos must be 0, 1 or 2']
  ])('%s %j: %s', async (file, options, problem) => {
    expect(await ruleTest(file, options)).toEqual(usage(problem))
  })

  test('--all with rules.dir null has no fixtures to run', async () => {
    const io = memoryOutput()
    expect(await runRuleTest(parseConfig({ rules: { dir: null } }, { baseDir: scratchDir() }), undefined, { all: true }, io)).toBe(2)
    expect(io.stderr).toBe("switchyard: 'rule test --all' runs the fixtures in rules.dir, and rules.dir is null\nTry 'switchyard --help'.\n")
  })

  test('a rule file that cannot be read exits 1, naming it', async () => {
    const file = path.join(scratchDir(), 'missing.js')
    const result = await ruleTest(file, { topic: 't', payload: '' })
    expect(result).toMatchObject({ code: 1, stdout: '' })
    expect(result.stderr).toMatch(new RegExp(`^switchyard: ${file}: cannot read ${file}: ENOENT`))
  })
})
