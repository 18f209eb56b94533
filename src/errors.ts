/**
 * The closed set of errors Switchyard throws at its API boundary. Callers
 * match on `.code`, never on the message; `cause` keeps the original error.
 * docs/errors.md has one row per code with what it means and how to fix it.
 */
export type ErrorCode =
  | 'ERR_CONFIG_INVALID'
  | 'ERR_LISTEN'
  | 'ERR_TLS'
  | 'ERR_PERSISTENCE'
  | 'ERR_CLOSED'
  | 'ERR_PUBLISH'

export class SwitchyardError extends Error {
  readonly code: ErrorCode

  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SwitchyardError'
    this.code = code
  }
}

/** A config that failed validation. `problems` holds every problem found, one line each, `key: what is wrong; how to fix`. */
export class ConfigError extends SwitchyardError {
  readonly problems: readonly string[]

  constructor (problems: readonly string[], source?: string) {
    const where = source ? ` in ${source}` : ''
    super('ERR_CONFIG_INVALID', `invalid configuration${where}:\n  ${problems.join('\n  ')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}
