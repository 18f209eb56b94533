/*
 * The command line. This is the only module that touches `process`:
 * arguments, signals, exit codes. Everything else is the library.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { createBroker, type Broker } from './server.js'
import { loadConfig } from './config.js'
import { ConfigError, SwitchyardError } from './errors.js'
import { createLogger } from './log.js'

const HELP = `Usage: switchyard [command] [options]

Commands:
  start            start the broker (the default command)
  check            validate the configuration, print every problem, exit 0 or 1

Options:
  -c, --config <file>   JSON config file (default: ./switchyard.json if it exists, else built-in defaults)
  -h, --help            show this help
  -v, --version         print the version

Examples:
  switchyard                                  # tcp 1883, tls 8883, wss 8084 on 127.0.0.1
  switchyard start --config switchyard.json
  switchyard check --config switchyard.json

Docs: docs/configuration.md (every option), docs/errors.md (error codes).`

const COMMANDS = new Set(['start', 'check'])

export async function main (argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' }
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
  if (!COMMANDS.has(command) || positionals.length > 1) {
    process.stderr.write(`switchyard: unknown command '${positionals.join(' ')}'\nTry 'switchyard --help'.\n`)
    return 2
  }

  let config
  try {
    config = loadConfig(values.config)
  } catch (err) {
    return reportStartupError(err)
  }
  if (command === 'check') {
    process.stdout.write(`configuration OK${values.config ? `: ${values.config}` : ''}\n`)
    return 0
  }
  return start(config)
}

async function start (config: ReturnType<typeof loadConfig>): Promise<number> {
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
