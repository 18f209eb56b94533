import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Broker, ConfigInput } from '../../src/index.js'
import type { RuleStateView } from '../../src/rules/state.js'
import { startBroker, tempDir } from './broker.js'

export const EXAMPLE_RULES = fileURLToPath(new URL('../../rules/', import.meta.url))

/**
 * The example rules Switchyard ships, by name: each is `rules/<name>.js` with
 * its fixture `rules/<name>.test.json`. Tests name them, so a rule a user
 * adds to rules/ never changes what the tests expect.
 */
export const SHIPPED_EXAMPLES = ['lora-decoder', 'mqtt5-rpc', 'peakboard-shopfloor', 'tb-rpc', 'tb-uplink'] as const

/** A temporary directory with a switchyard.json whose rules.dir holds copies of the shipped examples only. */
export function shippedExamplesDir (): string {
  const dir = tempDir('switchyard-examples-')
  mkdirSync(path.join(dir, 'rules'))
  for (const name of SHIPPED_EXAMPLES) {
    for (const file of [`${name}.js`, `${name}.test.json`]) copyFileSync(path.join(EXAMPLE_RULES, file), path.join(dir, 'rules', file))
  }
  writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify({ rules: { dir: 'rules' } }))
  return dir
}

/** A broker whose rules directory holds `files` (name -> source) and copies of the named example rules. */
export async function startWithRules (files: Record<string, string>, options: { examples?: string[], config?: ConfigInput } = {}): Promise<{ broker: Broker, dir: string }> {
  const dir = tempDir('switchyard-rules-')
  for (const [name, source] of Object.entries(files)) writeFileSync(path.join(dir, name), source)
  for (const example of options.examples ?? []) copyFileSync(path.join(EXAMPLE_RULES, example), path.join(dir, example))
  const broker = await startBroker({ ...options.config, rules: { dir, ...options.config?.rules } })
  return { broker, dir }
}

export function rule (broker: Broker, name: string): RuleStateView {
  const found = broker.rules().find(r => r.name === name)
  if (!found) throw new Error(`no rule ${name}; have ${broker.rules().map(r => r.name).join(', ')}`)
  return found
}

/** Polls until `check` holds; fails after `timeoutMs` with `what` (helpers/wait.ts). */
export { until } from './wait.js'
