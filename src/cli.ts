/*
 * The command line. This is the only module that touches `process`:
 * arguments, signals, exit codes. Everything else is the library.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { createBroker, type Broker } from './server.js'
import { loadConfig, type Config } from './config.js'
import { RuleTester } from './rules/tester.js'
import { ConfigError, SwitchyardError } from './errors.js'
import { createLogger } from './log.js'

const HELP = `Usage: switchyard [command] [options]

Commands:
  start                 start the broker (the default command)
  check                 validate the configuration and every rule file; print every problem; exit 0 or 1
  rule test <file>      run one message through a rule file in the real sandbox; print its outputs as JSON
  rule test --all       run every rules/<name>.test.json fixture against rules/<name>.js

Options:
  -c, --config <file>   JSON config file (default: ./switchyard.json if it exists, else built-in defaults)
  -h, --help            show this help
  -v, --version         print the version

rule test options:
  --topic <topic>       the input message's topic (required)
  --payload <text>      the payload as text, or
  --payload-hex <hex>   the payload as hex bytes, for binary devices
  --client-id <id>      msg.clientId (default: null)
  --username <name>     msg.username (default: null)
  --qos <0|1|2>         msg.qos (default: 0)

Examples:
  switchyard                                  # tcp 1883, tls 8883, wss 8084 on 127.0.0.1
  switchyard start --config switchyard.json
  switchyard check --config switchyard.json
  switchyard rule test rules/tb-uplink.js --topic tb/mqtt-integration-tutorial/sensors/SN-001/temperature --payload '{"value":25.1}'
  switchyard rule test rules/lora-decoder.js --topic lora/0001/up --payload-hex 00eb370ce4

Docs: docs/configuration.md (every option), docs/rules.md (rule files), docs/errors.md (error codes).`

const RULE_TEST_OPTIONS = ['topic', 'payload', 'payload-hex', 'client-id', 'username', 'qos', 'all'] as const

export async function main (argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        topic: { type: 'string' },
        payload: { type: 'string' },
        'payload-hex': { type: 'string' },
        'client-id': { type: 'string' },
        username: { type: 'string' },
        qos: { type: 'string' },
        all: { type: 'boolean' }
      }
    })
  } catch (err) {
    process.stderr.write(`switchyard: ${(err as Error).message}\nTry 'switchyard --help'.\n`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) { process.stdout.write(HELP + '\n'); return 0 }
  if (values.version) { process.stdout.write(version() + '\n'); return 0 }
  const command = positionals[0] ?? 'start'
  const isRuleTest = command === 'rule' && positionals[1] === 'test'
  const known = (command === 'start' || command === 'check') ? positionals.length === 1 || positionals.length === 0 : isRuleTest && positionals.length <= 3
  if (!known) return usage(`unknown command '${positionals.join(' ')}'`)
  const misplaced = RULE_TEST_OPTIONS.find(o => values[o] !== undefined)
  if (!isRuleTest && misplaced) return usage(`--${misplaced} only applies to 'rule test'`)

  let config
  try {
    config = loadConfig(values.config)
  } catch (err) {
    return reportStartupError(err)
  }
  if (command === 'check') return check(config, values.config)
  if (isRuleTest) return ruleTest(config, positionals[2], values)
  return start(config)
}

function usage (problem: string): number {
  process.stderr.write(`switchyard: ${problem}\nTry 'switchyard --help'.\n`)
  return 2
}

async function check (config: Config, file: string | undefined): Promise<number> {
  const tester = new RuleTester(config.rules, config.limits.maxPacketSize)
  try {
    const { checked, failures } = await tester.checkDir(config.rules.dir)
    for (const f of failures) process.stderr.write(`${f.file}: ${f.error}\n`)
    if (failures.length > 0) {
      process.stderr.write(`switchyard: ${failures.length} of ${checked} rule files failed to load\n`)
      return 1
    }
    process.stdout.write(`configuration OK${file ? `: ${file}` : ''}; ${checked} rule file${checked === 1 ? '' : 's'} OK in ${config.rules.dir}\n`)
    return 0
  } finally {
    await tester.close()
  }
}

async function ruleTest (config: Config, file: string | undefined, values: Record<string, string | boolean | undefined>): Promise<number> {
  const tester = new RuleTester(config.rules, config.limits.maxPacketSize)
  try {
    if (values.all) {
      if (file !== undefined) return usage("'rule test --all' takes no file: it runs every fixture in rules.dir")
      const reports = await tester.runFixtures(config.rules.dir)
      for (const r of reports) process.stdout.write(`${r.passed ? 'ok  ' : 'FAIL'} ${r.file} > ${r.name}${r.detail ? `\n     ${r.detail}` : ''}\n`)
      const failed = reports.filter(r => !r.passed).length
      process.stdout.write(`${reports.length - failed} passed, ${failed} failed\n`)
      return failed > 0 || reports.length === 0 ? 1 : 0
    }
    if (file === undefined) return usage("'rule test' needs a rule file, or --all")
    if (typeof values.topic !== 'string') return usage("'rule test' needs --topic <topic>")
    if (values.payload !== undefined && values['payload-hex'] !== undefined) return usage('give --payload or --payload-hex, not both')
    const hex = values['payload-hex']
    if (typeof hex === 'string' && !/^([0-9a-fA-F]{2})*$/.test(hex)) return usage('--payload-hex needs an even number of hex digits')
    const qos = values.qos === undefined ? 0 : Number(values.qos)
    if (qos !== 0 && qos !== 1 && qos !== 2) return usage('--qos must be 0, 1 or 2')
    const loaded = await tester.load(file)
    if (!loaded.ok) {
      process.stderr.write(`switchyard: ${file}: ${loaded.error}\n`)
      return 1
    }
    const outcome = await tester.run(loaded.name, {
      topic: values.topic,
      ...(typeof hex === 'string' ? { payloadHex: hex } : { payload: typeof values.payload === 'string' ? values.payload : '' }),
      clientId: typeof values['client-id'] === 'string' ? values['client-id'] : null,
      username: typeof values.username === 'string' ? values.username : null,
      qos
    })
    if (!outcome.ok) {
      process.stderr.write(`switchyard: ${loaded.name}: ${outcome.error}\n`)
      return 1
    }
    process.stdout.write(JSON.stringify(outcome.outputs, null, 2) + '\n')
    return 0
  } finally {
    await tester.close()
  }
}

async function start (config: Config): Promise<number> {
  const logger = createLogger(config.log)
  let resolveExit!: (code: number) => void
  const exit = new Promise<number>(resolve => { resolveExit = resolve })
  let broker: Broker | undefined
  let stopping = false
  const shutdown = () => {
    broker!.close().then(() => resolveExit(0), err => {
      logger.error({ err }, 'error during shutdown')
      resolveExit(1)
    })
  }
  // Installed before the broker starts: a signal during start-up (after the
  // listeners are logged, before start() returns) must still close cleanly.
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal means "now": skip the graceful path.
      logger.warn({ signal }, 'second signal; exiting immediately')
      resolveExit(1)
      return
    }
    stopping = true
    logger.info({ signal }, 'shutting down')
    if (broker) shutdown()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    broker = await createBroker(config, { logger })
  } catch (err) {
    return reportStartupError(err)
  }
  if (stopping) shutdown()
  return exit
}

function reportStartupError (err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`switchyard: ${err.message}\n`)
  } else if (err instanceof SwitchyardError) {
    process.stderr.write(`switchyard: ${err.code}: ${err.message}\n`)
  } else {
    process.stderr.write(`switchyard: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
  }
  return 1
}

function version (): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

main(process.argv.slice(2)).then(code => process.exit(code), err => {
  process.stderr.write(`switchyard: ${(err as Error)?.stack ?? String(err)}\n`)
  process.exit(1)
})
