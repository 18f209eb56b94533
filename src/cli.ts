/*
 * The entry point, and the only module that touches `process`: arguments,
 * the working directory, the standard streams, signals, the pid file and
 * exit codes. The commands live in src/cli/ and get what they need as
 * parameters (test/unit/cli-*.test.ts runs them in process);
 * test/unit/process-boundary.test.ts keeps `process` out of every other file.
 */
import nodeCluster from 'node:cluster'
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { createBroker, type Broker } from './server.js'
import { forWorker, loadConfig, type Config } from './config.js'
import { SwitchyardError } from './errors.js'
import { createLogger } from './log.js'
import { parseCommand } from './cli/args.js'
import { runCheck } from './cli/check.js'
import { reportError, usage, type Output } from './cli/io.js'
import { runPasswd } from './cli/passwd.js'
import { createPrompt } from './cli/prompt.js'
import { runRuleNew } from './cli/rule-new.js'
import { runRuleTest } from './cli/rule-test.js'
import { READY_MESSAGE, WORKER_ENV, prepareDevCertificates, runPrimary, workerNodeId } from './cli/workers.js'

const io: Output = {
  out: text => { process.stdout.write(text) },
  err: text => { process.stderr.write(text) }
}

export async function main (argv: string[]): Promise<number> {
  const command = parseCommand(argv)
  switch (command.name) {
    case 'passwd':
      return runPasswd(command.argv, io, createPrompt({ input: process.stdin, output: io.err, onInterrupt: () => process.exit(130) }))
    case 'print':
      io.out(command.text + '\n')
      return 0
    case 'usage':
      return usage(io, command.problem)
  }
  let config
  try {
    config = loadConfig(command.config, process.cwd())
  } catch (err) {
    return reportError(io, err)
  }
  switch (command.name) {
    case 'check': return runCheck(config, command.config, io, process.env)
    case 'rule test': return runRuleTest(config, command.file, command.options, io)
    case 'rule new': return runRuleNew(config, command, io)
    case 'start': {
      const pretty = command.pretty || process.stdout.isTTY === true
      // cluster.workers > 1: this process is the primary, or one of the workers it forked (src/cli/workers.ts)
      if (config.cluster !== undefined && config.cluster.workers > 1) {
        if (nodeCluster.isPrimary) return startPrimary(config, pretty, command.pidFile)
        const index = Number(process.env[WORKER_ENV])
        const nodeId = workerNodeId(config.cluster.nodeId, index)
        // the primary writes the pid file; each worker tells it when its broker listens
        return start(forWorker(config, nodeId), pretty, undefined, { index, onReady: () => process.send?.({ type: READY_MESSAGE, nodeId }) })
      }
      return start(config, pretty, command.pidFile, undefined, () => loadConfig(command.config, process.cwd()))
    }
  }
}

/** The primary of cluster.workers > 1: forks the workers and supervises them (src/cli/workers.ts). */
async function startPrimary (config: Config, pretty: boolean, pidFile: string | undefined): Promise<number> {
  const logger = createLogger(config.log, { pretty }).child({ primary: true })
  try {
    prepareDevCertificates(config, logger)
  } catch (err) {
    return reportError(io, err)
  }
  const primary = runPrimary({
    workers: config.cluster!.workers,
    nodeId: config.cluster!.nodeId,
    logger,
    fork: env => nodeCluster.fork(env),
    onSignal: (signal, handler) => { process.on(signal, handler) },
    ...(pidFile === undefined ? {} : { onReady: () => writePidFile(pidFile) })
  })
  if (process.env.npm_lifecycle_event !== undefined) onParentExit(() => primary.stop('parent exited'))
  return primary.exited
}

async function start (config: Config, pretty: boolean, pidFile: string | undefined, worker?: { index: number, onReady: () => void }, reread?: () => Config): Promise<number> {
  // several workers write to one stdout: each line says which (the primary logs each worker's nodeId and pid)
  const logger = worker ? createLogger(config.log, { pretty }).child({ worker: worker.index }) : createLogger(config.log, { pretty })
  let resolveExit!: (code: number) => void
  const exit = new Promise<number>(resolve => { resolveExit = resolve })
  let broker: Broker | undefined
  let stopping = false
  let stoppingSince = 0
  const shutdown = () => {
    broker!.close().then(() => resolveExit(0), err => {
      logger.error({ err }, 'error during shutdown')
      resolveExit(1)
    })
  }
  // Installed before the broker starts: a signal during start-up (after the
  // listeners are logged, before start() returns) must still close cleanly.
  const onSignal = (signal: NodeJS.Signals | 'parent exited') => {
    if (stopping) {
      // Ctrl-C under `npm start` arrives twice at once (from the terminal,
      // and forwarded by npm), as does a signal sent to a process group.
      if (Date.now() - stoppingSince < SAME_SIGNAL_MS) return
      // A second signal means "now": skip the graceful path.
      logger.warn({ signal }, 'second signal; exiting immediately')
      resolveExit(1)
      return
    }
    stopping = true
    stoppingSince = Date.now()
    logger.info({ signal }, 'shutting down')
    if (broker) shutdown()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // SIGHUP re-reads the password file, the ACL file and the certificates, as Mosquitto does,
  // and the config file's "bridges" (docs/bridges.md): only changed bridges reconnect.
  process.on('SIGHUP', () => {
    if (!broker || stopping) return
    let bridges: Config['bridges'] | undefined
    try {
      bridges = reread?.().bridges
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'SIGHUP: the config file is invalid; the bridges keep their current settings')
    }
    void broker.reload(bridges === undefined ? undefined : { bridges })
  })
  try {
    // env: where cluster.passwordEnv is read (docs/cluster.md)
    broker = await createBroker(config, { logger, env: process.env })
  } catch (err) {
    return reportError(io, err)
  }
  if (pidFile !== undefined) {
    try {
      writePidFile(pidFile)
    } catch (err) {
      await broker.close()
      return reportError(io, err)
    }
  }
  worker?.onReady()
  if (process.env.npm_lifecycle_event !== undefined && !worker) onParentExit(() => onSignal('parent exited'))
  if (stopping) shutdown()
  return exit
}

/** Signals this close together are one signal delivered twice. */
const SAME_SIGNAL_MS = 500
const PARENT_CHECK_MS = 500

/**
 * Mosquitto's pid_file: written once the listeners are bound, replaced if it
 * exists (a stale file after a kill -9 must not block the start; a second
 * broker fails on its ports or the LevelDB lock anyway), and removed on exit
 * if it still names this process.
 */
function writePidFile (file: string): void {
  const absolute = path.resolve(file)
  const content = `${process.pid}\n`
  try {
    // Written whole, then renamed into place: a supervisor or a script that
    // reads it never sees it empty or half-written.
    const partial = `${absolute}.${process.pid}.tmp`
    writeFileSync(partial, content)
    renameSync(partial, absolute)
  } catch (err) {
    throw new SwitchyardError('ERR_PID_FILE', `cannot write the pid file ${absolute}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; create its directory, or make it writable by this user`, { cause: err })
  }
  process.once('exit', () => {
    try {
      if (readFileSync(absolute, 'utf8') === content) unlinkSync(absolute)
    } catch { /* already gone */ }
  })
}

/**
 * Started by an npm script (npm start, npx): npm forwards SIGINT and SIGTERM
 * to the script's process, which may be a shell that does not pass them on,
 * and a killed npm forwards nothing. Leave when the parent does, rather than
 * keep the ports and the LevelDB lock with nobody to stop us.
 */
function onParentExit (then: () => void): void {
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    then()
  }, PARENT_CHECK_MS)
  timer.unref()
}

main(process.argv.slice(2)).then(code => process.exit(code), err => {
  process.stderr.write(`switchyard: ${(err as Error)?.stack ?? String(err)}\n`)
  process.exit(1)
})
