/*
 * Which command the arguments name, and its options. Only the syntax is
 * checked here; what needs the config (rule test's own options) is checked
 * by the command, after the config has loaded.
 */
import { parseArgs } from 'node:util'
import { HELP, PASSWD_HELP } from './help.js'
import { VERSION } from '../version.js'

export interface RuleTestOptions {
  all: boolean
  topic?: string
  payload?: string
  payloadHex?: string
  clientId?: string
  username?: string
  /** As typed; rule-test.ts checks it. */
  qos?: string
  /** Each --property, as typed (`key=value`); rule-test.ts parses them. */
  properties?: string[]
}

export type Command =
  /** mosquitto_passwd's own flags, parsed by passwd.ts. */
  | { name: 'passwd', argv: string[] }
  /** --help, --version, help [passwd]: print `text` on stdout, exit 0. */
  | { name: 'print', text: string }
  /** A usage error: exit 2. */
  | { name: 'usage', problem: string }
  | { name: 'start', config?: string, pretty: boolean, pidFile?: string }
  | { name: 'check', config?: string }
  | { name: 'rule test', config?: string, file?: string, options: RuleTestOptions }
  /** `rule new <name> --topic <filter> [--ts]`: rule-new.ts checks the name and the filter. */
  | { name: 'rule new', config?: string, rule?: string, topic?: string, ts: boolean }

const RULE_TEST_OPTIONS = ['topic', 'payload', 'payload-hex', 'client-id', 'username', 'qos', 'property', 'all'] as const

export function parseCommand (argv: readonly string[]): Command {
  // passwd has mosquitto_passwd's own flags (-c is not --config there).
  if (argv[0] === 'passwd') return { name: 'passwd', argv: argv.slice(1) }
  if (argv[0] === 'help' && argv.length <= 2 && (argv[1] === undefined || argv[1] === 'passwd')) {
    return { name: 'print', text: argv[1] === 'passwd' ? PASSWD_HELP : HELP }
  }
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        pretty: { type: 'boolean' },
        'pid-file': { type: 'string' },
        topic: { type: 'string' },
        payload: { type: 'string' },
        'payload-hex': { type: 'string' },
        'client-id': { type: 'string' },
        username: { type: 'string' },
        qos: { type: 'string' },
        property: { type: 'string', multiple: true },
        all: { type: 'boolean' },
        ts: { type: 'boolean' }
      }
    })
  } catch (err) {
    return { name: 'usage', problem: (err as Error).message }
  }
  const { values, positionals } = parsed
  if (values.help) return { name: 'print', text: HELP }
  if (values.version) return { name: 'print', text: VERSION }
  const command = positionals[0] ?? 'start'
  const isRuleTest = command === 'rule' && positionals[1] === 'test'
  const isRuleNew = command === 'rule' && positionals[1] === 'new'
  const known = (command === 'start' || command === 'check') ? positionals.length <= 1 : (isRuleTest || isRuleNew) && positionals.length <= 3
  if (!known) return { name: 'usage', problem: `unknown command '${positionals.join(' ')}'` }
  if (isRuleNew) {
    const other = RULE_TEST_OPTIONS.find(o => o !== 'topic' && values[o] !== undefined)
    if (other) return { name: 'usage', problem: `--${other} only applies to 'rule test'; 'rule new' takes --topic <filter> and --ts` }
    if (values['pid-file'] !== undefined) return { name: 'usage', problem: "--pid-file only applies to 'start'" }
    return { name: 'rule new', ...(values.config === undefined ? {} : { config: values.config }), ...(positionals[2] === undefined ? {} : { rule: positionals[2] }), ...(values.topic === undefined ? {} : { topic: values.topic }), ts: values.ts === true }
  }
  if (values.ts !== undefined) return { name: 'usage', problem: "--ts only applies to 'rule new'" }
  const misplaced = RULE_TEST_OPTIONS.find(o => values[o] !== undefined)
  if (!isRuleTest && misplaced) return { name: 'usage', problem: `--${misplaced} only applies to 'rule test'${misplaced === 'topic' ? " and 'rule new'" : ''}` }
  if (command !== 'start' && values['pid-file'] !== undefined) return { name: 'usage', problem: "--pid-file only applies to 'start'" }

  const config = values.config === undefined ? {} : { config: values.config }
  if (command === 'check') return { name: 'check', ...config }
  if (isRuleTest) {
    const options: RuleTestOptions = { all: values.all === true }
    if (values.topic !== undefined) options.topic = values.topic
    if (values.payload !== undefined) options.payload = values.payload
    if (values['payload-hex'] !== undefined) options.payloadHex = values['payload-hex']
    if (values['client-id'] !== undefined) options.clientId = values['client-id']
    if (values.username !== undefined) options.username = values.username
    if (values.qos !== undefined) options.qos = values.qos
    if (values.property !== undefined) options.properties = values.property
    return { name: 'rule test', ...config, ...(positionals[2] === undefined ? {} : { file: positionals[2] }), options }
  }
  return { name: 'start', ...config, pretty: values.pretty === true, ...(values['pid-file'] === undefined ? {} : { pidFile: values['pid-file'] }) }
}
