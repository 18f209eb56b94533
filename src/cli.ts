/*
 * The command line. This is the only module that touches `process`:
 * arguments, signals, exit codes. Everything else is the library.
 */
import { parseArgs } from 'node:util'
import { createBroker, type Broker } from './server.js'
import { loadConfig, type Config } from './config.js'
import { RuleTester } from './rules/tester.js'
import { Authenticator } from './auth/authenticator.js'
import { deleteUser, hashFile, setPassword, usernameProblem } from './auth/passwd.js'
import { ConfigError, SwitchyardError } from './errors.js'
import { createLogger } from './log.js'
import { VERSION } from './version.js'

const HELP = `Usage: switchyard [command] [options]

Commands:
  start                 start the broker (the default command)
  check                 validate the configuration and every rule file; print every problem; exit 0 or 1
  rule test <file>      run one message through a rule file in the real sandbox; print its outputs as JSON
  rule test --all       run every rules/<name>.test.json fixture against rules/<name>.js
  passwd ...            manage a Mosquitto-compatible password file (see 'switchyard passwd --help')

Options:
  -c, --config <file>   JSON config file (default: ./switchyard.json if it exists, else built-in defaults)
  -h, --help            show this help
  -v, --version         print the version
      --pretty          readable log lines instead of JSON (the default on a terminal)

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

const PASSWD_HELP = `Usage: switchyard passwd [-c] <file> <user>          prompt for the password (twice, no echo)
       switchyard passwd [-c] -b <file> <user> <password>
       switchyard passwd -D <file> <user>
       switchyard passwd -U <file>

Writes the format of mosquitto_passwd 2.0 ($7$, PBKDF2-SHA512), which Mosquitto reads too.
 -b : batch mode: the password is on the command line
 -c : create a new file, replacing an existing one
 -D : delete the user
 -U : hash every plain-text user:password line of the file in place`

export async function main (argv: string[]): Promise<number> {
  // passwd has mosquitto_passwd's own flags (-c is not --config there).
  if (argv[0] === 'passwd') return passwd(argv.slice(1))
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        pretty: { type: 'boolean' },
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
  if (values.version) { process.stdout.write(VERSION + '\n'); return 0 }
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
  return start(config, values.pretty === true || process.stdout.isTTY === true)
}

function usage (problem: string): number {
  process.stderr.write(`switchyard: ${problem}\nTry 'switchyard --help'.\n`)
  return 2
}

async function passwd (argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { c: { type: 'boolean', short: 'c' }, b: { type: 'boolean', short: 'b' }, D: { type: 'boolean', short: 'D' }, U: { type: 'boolean', short: 'U' }, help: { type: 'boolean', short: 'h' } } })
  } catch (err) {
    process.stderr.write(`switchyard passwd: ${(err as Error).message}\n${PASSWD_HELP}\n`)
    return 2
  }
  const { values: o, positionals: p } = parsed
  if (o.help) { process.stdout.write(PASSWD_HELP + '\n'); return 0 }
  const fail = (message: string, code = 1) => { process.stderr.write(`switchyard passwd: ${message}\n`); return code }
  const wanted = o.U ? 1 : o.D ? 2 : o.b ? 3 : 2
  if (p.length !== wanted || (o.D && (o.c || o.b)) || (o.U && (o.c || o.b || o.D))) {
    process.stderr.write(PASSWD_HELP + '\n')
    return 2
  }
  const [file, user] = p as [string, string | undefined]
  try {
    if (o.U) {
      const { hashed, alreadyHashed } = await hashFile(file)
      if (alreadyHashed > 0) process.stderr.write(`switchyard passwd: ${alreadyHashed} line(s) were already hashed and are unchanged\n`)
      process.stdout.write(`hashed ${hashed} password(s) in ${file}\n`)
      return 0
    }
    const problem = usernameProblem(user!)
    if (problem) return fail(problem)
    if (o.D) return (await deleteUser(file, user!)) ? 0 : fail(`user ${user} not found in ${file}`)
    const password = o.b ? p[2]! : await promptTwice()
    if (password === undefined) return fail('the passwords do not match')
    if (password === '') return fail('the password is empty')
    await setPassword(file, user!, password, o.c === true)
    return 0
  } catch (err) {
    return fail((err as Error).message)
  }
}

/** Reads the password twice with no echo on a terminal, or two lines from a pipe. undefined when they differ. */
async function promptTwice (): Promise<string | undefined> {
  const first = await readSecret('Password: ')
  const second = await readSecret('Reenter password: ')
  return first === second ? first : undefined
}

let pipedLines: string[] | undefined
async function readSecret (prompt: string): Promise<string> {
  const stdin = process.stdin
  if (!stdin.isTTY) {
    if (pipedLines === undefined) {
      let text = ''
      for await (const chunk of stdin) text += chunk
      pipedLines = text.split(/\r?\n/)
    }
    return pipedLines.shift() ?? ''
  }
  process.stderr.write(prompt)
  stdin.setRawMode(true)
  stdin.resume()
  return new Promise(resolve => {
    let value = ''
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          stdin.off('data', onData)
          stdin.setRawMode(false)
          stdin.pause()
          process.stderr.write('\n')
          resolve(value)
          return
        }
        if (ch === '\u0003') { stdin.setRawMode(false); process.exit(130) }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1)
        else value += ch
      }
    }
    stdin.on('data', onData)
  })
}

async function check (config: Config, file: string | undefined): Promise<number> {
  try {
    await Authenticator.load(config.auth)
  } catch (err) {
    process.stderr.write(`switchyard: invalid auth files:\n  ${(err as Error).message.split('\n').join('\n  ')}\n`)
    return 1
  }
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

async function start (config: Config, pretty: boolean): Promise<number> {
  const logger = createLogger(config.log, { pretty })
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
  // SIGHUP re-reads the password file, the ACL file and the certificates, as Mosquitto does.
  process.on('SIGHUP', () => {
    if (broker && !stopping) void broker.reload()
  })
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


main(process.argv.slice(2)).then(code => process.exit(code), err => {
  process.stderr.write(`switchyard: ${(err as Error)?.stack ?? String(err)}\n`)
  process.exit(1)
})
