/*
 * `switchyard rule test`: one message through one rule file, or every
 * `<name>.test.json` fixture with --all, in the real sandbox (rules/tester.ts).
 */
import type { Config } from '../config.js'
import { checkProperties } from '../properties.js'
import { RuleTester, type TestProperties } from '../rules/tester.js'
import { closest } from '../suggest.js'
import type { RuleTestOptions } from './args.js'
import { usage, type Output } from './io.js'

export async function runRuleTest (config: Config, file: string | undefined, options: RuleTestOptions, io: Output): Promise<number> {
  const tester = new RuleTester(config.rules, config.limits.maxPacketSize)
  try {
    if (options.all) {
      if (file !== undefined) return usage(io, "'rule test --all' takes no file: it runs every fixture in rules.dir")
      if (config.rules.dir === null) return usage(io, "'rule test --all' runs the fixtures in rules.dir, and rules.dir is null")
      const reports = await tester.runFixtures(config.rules.dir)
      for (const r of reports) io.out(`${r.passed ? 'ok  ' : 'FAIL'} ${r.file} > ${r.name}${r.detail ? `\n     ${r.detail}` : ''}\n`)
      const failed = reports.filter(r => !r.passed).length
      io.out(`${reports.length - failed} passed, ${failed} failed\n`)
      return failed > 0 || reports.length === 0 ? 1 : 0
    }
    if (file === undefined) return usage(io, "'rule test' needs a rule file, or --all")
    if (options.topic === undefined) return usage(io, "'rule test' needs --topic <topic>")
    if (options.payload !== undefined && options.payloadHex !== undefined) return usage(io, 'give --payload or --payload-hex, not both')
    // An empty payload is --payload '', never the absence of both.
    if (options.payload === undefined && options.payloadHex === undefined) return usage(io, "'rule test' needs --payload <text> or --payload-hex <hex> (--payload '' for an empty payload)")
    const hex = options.payloadHex
    if (hex !== undefined && !/^([0-9a-fA-F]{2})*$/.test(hex)) return usage(io, '--payload-hex needs an even number of hex digits')
    const qos = options.qos === undefined ? 0 : Number(options.qos)
    if (qos !== 0 && qos !== 1 && qos !== 2) return usage(io, '--qos must be 0, 1 or 2')
    const properties = parseProperties(options.properties ?? [])
    if ('problem' in properties) return usage(io, properties.problem)
    const loaded = await tester.load(file)
    if (!loaded.ok) {
      io.err(`switchyard: ${file}: ${loaded.error}\n`)
      return 1
    }
    const outcome = await tester.run(loaded.name, {
      topic: options.topic,
      ...(hex !== undefined ? { payloadHex: hex } : { payload: String(options.payload) }),
      clientId: options.clientId ?? null,
      username: options.username ?? null,
      qos,
      ...(properties.properties === undefined ? {} : { properties: properties.properties })
    })
    if (!outcome.ok) {
      io.err(`switchyard: ${loaded.name}: ${outcome.error}\n`)
      return 1
    }
    io.out(JSON.stringify(outcome.outputs, null, 2) + '\n')
    return 0
  } finally {
    await tester.close()
  }
}

const PROPERTY_KEYS = ['contentType', 'responseTopic', 'correlationData', 'correlationDataHex', 'messageExpiryInterval', 'payloadFormatIndicator'] as const
const USER = 'user.'

/**
 * The input's MQTT 5 properties from `--property key=value` options:
 * `user.<name>=<value>` a user property (repeat a name for several values),
 * `contentType`, `responseTopic`, `correlationData` (text, sent as UTF-8) or
 * `correlationDataHex` (bytes), `messageExpiryInterval` (seconds),
 * `payloadFormatIndicator` (true or false). Checked as broker.publish()
 * checks them.
 */
export function parseProperties (options: readonly string[]): { properties: TestProperties | undefined } | { problem: string } {
  if (options.length === 0) return { properties: undefined }
  const properties: TestProperties = {}
  const user: Record<string, string | string[]> = {}
  for (const option of options) {
    const eq = option.indexOf('=')
    if (eq < 0) return { problem: `--property ${JSON.stringify(option)}: write it as key=value, e.g. --property contentType=application/json or --property user.site=north` }
    const key = option.slice(0, eq)
    const value = option.slice(eq + 1)
    if (key.startsWith(USER)) {
      const name = key.slice(USER.length)
      if (name === '') return { problem: `--property ${JSON.stringify(option)}: a user property needs a name: user.<name>=<value>` }
      const had = user[name]
      user[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value]
      continue
    }
    if (!(PROPERTY_KEYS as readonly string[]).includes(key)) {
      const guess = key.includes('.') ? closest(key.slice(0, key.indexOf('.')), ['user']) : closest(key, [...PROPERTY_KEYS, 'user'])
      return { problem: `--property ${JSON.stringify(option)}: unknown property ${JSON.stringify(key)}${guess ? `; did you mean ${guess === 'user' ? 'user.<name>' : guess}?` : ''} (the properties are user.<name>, ${PROPERTY_KEYS.join(', ')})` }
    }
    if (key in properties) return { problem: `--property ${key} is given twice (only user properties repeat)` }
    switch (key) {
      case 'correlationDataHex':
        if (!/^([0-9a-fA-F]{2})*$/.test(value)) return { problem: '--property correlationDataHex needs an even number of hex digits' }
        properties.correlationDataHex = value
        break
      case 'messageExpiryInterval':
        if (!/^\d+$/.test(value)) return { problem: `--property messageExpiryInterval needs a whole number of seconds; got ${JSON.stringify(value)}` }
        properties.messageExpiryInterval = Number(value)
        break
      case 'payloadFormatIndicator':
        if (value !== 'true' && value !== 'false') return { problem: `--property payloadFormatIndicator needs true (UTF-8 text) or false; got ${JSON.stringify(value)}` }
        properties.payloadFormatIndicator = value === 'true'
        break
      default:
        properties[key as 'contentType' | 'responseTopic' | 'correlationData'] = value
    }
  }
  if (Object.keys(user).length > 0) properties.userProperties = user
  if (properties.correlationData !== undefined && properties.correlationDataHex !== undefined) return { problem: 'give --property correlationData or correlationDataHex, not both' }
  const { correlationDataHex, ...rest } = properties
  const checked = checkProperties(correlationDataHex === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationDataHex, 'hex') })
  if ('problem' in checked) return { problem: `--property ${checked.problem.replace(/^properties\./, '')}` }
  return { properties }
}
