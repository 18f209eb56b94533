/*
 * `switchyard rule new <name> --topic <filter> [--ts]`: writes a rule file
 * and its fixture into rules.dir, a starting point that passes
 * `switchyard rule test --all` as written. Never overwrites: a file of that
 * rule's name already there (x.js, x.ts or x.test.json) stops it.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import path from 'node:path'
import type { Config } from '../config.js'
import { ruleName } from '../rules/loader.js'
import { shadowOf } from '../rules/shadow.js'
import { filterProblem } from '../topics.js'
import { usage, type Output } from './io.js'

export interface RuleNewOptions { rule?: string, topic?: string, ts: boolean }

// A rule name is a file name and a $SYS topic level (status.ts): plain characters only.
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/

/** What is wrong with a name for `rule new`, or undefined. */
export function newRuleNameProblem (name: string): string | undefined {
  if (!NAME.test(name)) {
    return `rule name ${JSON.stringify(name)}: use letters, digits, '-', '_' and '.', starting with a letter or digit, at most 100 characters ` +
      '(it names rules/<name>.js and the status topic $SYS/switchyard/rules/<name>)'
  }
  if (/\.(js|ts|mjs|cjs|json)$/.test(name)) return `rule name ${JSON.stringify(name)}: give the name without an extension, e.g. ${name.replace(/\.[a-z]+$/, '')}`
  if (shadowOf(name) !== undefined) return `rule name ${JSON.stringify(name)}: <name>.next is the shadow version of rule <name>; to make one, copy rules/${shadowOf(name)!}.js to rules/${name}.js and change it`
  return undefined
}

export async function runRuleNew (config: Config, options: RuleNewOptions, io: Output): Promise<number> {
  const { rule, topic, ts } = options
  if (rule === undefined) return usage(io, "'rule new' needs a name: switchyard rule new <name> --topic <filter>")
  const nameProblem = newRuleNameProblem(rule)
  if (nameProblem) return usage(io, nameProblem)
  if (topic === undefined) return usage(io, `'rule new' needs --topic <filter>, the MQTT topic filter the rule converts, e.g. --topic 'sensors/+/temperature'`)
  const problem = filterProblem(topic)
  if (problem) return usage(io, `--topic ${JSON.stringify(topic)}: not a valid MQTT topic filter: ${problem} [MQTT-4.7.1]`)
  if (topic.startsWith('$SYS')) return usage(io, `--topic ${JSON.stringify(topic)}: $SYS/ is the broker's own, and rules never see it; choose another filter`)
  const dir = config.rules.dir
  if (dir === null) return usage(io, "'rule new' writes into rules.dir, and rules.dir is null in this config")

  const ext = ts ? 'ts' : 'js'
  const files = { rule: path.join(dir, `${rule}.${ext}`), fixture: path.join(dir, `${rule}.test.json`) }
  let existing: string[] = []
  try {
    existing = (await readdir(dir)).filter(f => f === `${rule}.test.json` || ((f.endsWith('.js') || f.endsWith('.ts')) && ruleName(f) === rule))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (existing.length > 0) {
    io.err(`switchyard: rule ${rule} exists already (${existing.map(f => path.join(dir, f)).join(', ')}); nothing written. Choose another name, or edit that file\n`)
    return 1
  }
  const sample = sampleTopic(topic)
  mkdirSync(dir, { recursive: true })
  // 'wx': fails rather than replace a file made since the check above.
  writeFileSync(files.rule, ruleSource(rule, topic, ts), { flag: 'wx' })
  writeFileSync(files.fixture, fixture(sample), { flag: 'wx' })
  io.out(`created ${files.rule}\ncreated ${files.fixture}\n` +
    `run its tests:  switchyard rule test --all\n` +
    `try it:         switchyard rule test ${files.rule} --topic ${shellQuote(sample)} --payload '{"value":21.5}'\n`)
  return 0
}

/** A topic the filter matches, for the fixture: '+' as "device1", '#' as "example". */
export function sampleTopic (filter: string): string {
  return filter.split('/').map(level => level === '+' ? 'device1' : level === '#' ? 'example' : level).join('/')
}

function ruleSource (name: string, filter: string, ts: boolean): string {
  const header = `// rules/${name}.${ts ? 'ts' : 'js'}: made by \`switchyard rule new\`. The contract: docs/rules.md.\n` +
    `// Its fixture, rules/${name}.test.json, runs with \`switchyard rule test --all\`: change both together.\n`
  const types = ts ? "import type { Message, Output } from 'switchyard-mqtt/rules'\n\n" : ''
  const signature = ts ? 'export function convert (msg: Message): Output' : 'export function convert (msg)'
  const value = ts ? 'let value: unknown' : 'let value'
  return `${header}${types}export const topics = [${JSON.stringify(filter)}]

// Called once per message whose topic matches; returns the output(s) to
// publish, or null for none. msg: topic, payload (text), bytes, qos, retain,
// clientId, username, timestamp, properties.
${signature} {
  ${value}
  try {
    value = JSON.parse(msg.payload)
  } catch {
    throw new Error(\`expected a JSON payload, got \${JSON.stringify(msg.payload)}\`)
  }
  return { topic: \`converted/\${msg.topic}\`, payload: { value } }
}
`
}

function fixture (sample: string): string {
  return JSON.stringify({
    cases: [
      {
        name: 'a JSON payload is published under converted/',
        input: { topic: sample, payload: '{"value":21.5}' },
        expect: [{ topic: `converted/${sample}`, payload: { value: { value: 21.5 } } }]
      },
      {
        name: 'a payload that is not JSON is an error',
        input: { topic: sample, payload: 'not json' },
        expectError: 'expected a JSON payload'
      }
    ]
  }, null, 2) + '\n'
}

function shellQuote (text: string): string {
  return /^[\w/.-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`
}
