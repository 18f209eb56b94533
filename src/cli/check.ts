/*
 * `switchyard check`: everything a start would refuse, without starting.
 * loadConfig() has checked the config itself; this loads what it names:
 * each TLS listener's files, each bridge's password variable and certificate
 * files, the password and ACL files, and every rule file.
 */
import { existsSync } from 'node:fs'
import { Authenticator } from '../auth/authenticator.js'
import { resolveSettings } from '../bridges/settings.js'
import type { Config } from '../config.js'
import { ConfigError } from '../errors.js'
import { loadTlsMaterial } from '../listeners/certs.js'
import { RuleTester } from '../rules/tester.js'
import { reportError, type Output } from './io.js'

/** `file`: the --config argument, named in the "configuration OK" line. */
export async function runCheck (config: Config, file: string | undefined, io: Output, env: Readonly<Record<string, string | undefined>> = {}): Promise<number> {
  const tls = tlsProblems(config)
  if (tls) reportError(io, tls)
  const bridges = bridgeProblems(config, env)
  if (bridges) reportError(io, bridges)
  // Reported; the auth and rule files are still checked, so one run shows every problem.
  const filesFailed = tls !== undefined || bridges !== undefined
  try {
    const auth = await Authenticator.load(config.auth)
    // Valid lines that are most likely typos: reported, and the check still passes.
    for (const warning of auth.warnings) io.err(`switchyard: warning: ${warning}\n`)
  } catch (err) {
    io.err(`switchyard: invalid auth files:\n  ${(err as Error).message.split('\n').join('\n  ')}\n`)
    return 1
  }
  const tester = new RuleTester(config.rules, config.limits.maxPacketSize)
  try {
    if (config.rules.dir === null) {
      if (filesFailed) return 1
      io.out(`configuration OK${file ? `: ${file}` : ''}; no rules directory (rules.dir is null)\n`)
      return 0
    }
    const { checked, failures, ignored } = await tester.checkDir(config.rules.dir)
    for (const f of ignored) io.err(`switchyard: warning: ${f.file}: ignored: ${f.reason}\n`)
    for (const f of failures) io.err(`${f.file}: ${f.error}\n`)
    if (failures.length > 0) {
      io.err(`switchyard: ${failures.length} of ${checked} rule files failed to load\n`)
      return 1
    }
    if (filesFailed) return 1
    io.out(`configuration OK${file ? `: ${file}` : ''}; ${checked} rule file${checked === 1 ? '' : 's'} OK in ${config.rules.dir}\n`)
    return 0
  } finally {
    await tester.close()
  }
}

/**
 * Each bridge as a start would resolve it (bridges/settings.ts): its
 * password variable set, its CA, certificate and key readable and usable.
 */
function bridgeProblems (config: Config, env: Readonly<Record<string, string | undefined>>): ConfigError | undefined {
  const problems: string[] = []
  config.bridges.forEach((b, i) => {
    try {
      resolveSettings(b, i, env)
    } catch (err) {
      problems.push((err as Error).message)
    }
  })
  return problems.length > 0 ? new ConfigError(problems) : undefined
}

/**
 * Loads every TLS listener's files as a start would (listeners/certs.ts), so
 * a key that is not its certificate's fails the check with ERR_TLS, all
 * listeners in one error. A development certificate that the first start
 * will generate is skipped: check writes nothing.
 */
function tlsProblems (config: Config): ConfigError | undefined {
  const problems: string[] = []
  let cause: unknown
  config.listeners.forEach((l, i) => {
    if (l.type !== 'tls' && l.type !== 'wss') return
    if (l.generated && !(existsSync(l.cert) && existsSync(l.key))) return
    try {
      loadTlsMaterial(l, config.devCertDir, () => {}, { key: `listeners[${i}]`, baseDir: config.baseDir })
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      problems.push(...err.problems)
      cause ??= err.cause
    }
  })
  return problems.length > 0 ? new ConfigError(problems, undefined, { code: 'ERR_TLS', cause }) : undefined
}
