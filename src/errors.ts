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
  | 'ERR_INVALID_TOPIC'
  | 'ERR_INVALID_QOS'
  | 'ERR_INVALID_PAYLOAD'
  | 'ERR_INVALID_PROPERTIES'
  | 'ERR_INVALID_FILTER'
  | 'ERR_INVALID_RULE'
  | 'ERR_PID_FILE'
  | 'ERR_RULES_HOST'
  | 'ERR_CLUSTER_UNAVAILABLE'
  | 'ERR_CLUSTER_NODE_ID_TAKEN'
  | 'ERR_CLUSTER_EVICTED'

export class SwitchyardError extends Error {
  readonly code: ErrorCode

  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SwitchyardError'
    this.code = code
  }
}

/**
 * A config that failed validation. `problems` holds every problem found, one
 * line each, `key: what is wrong; how to fix`. The code is `ERR_CONFIG_INVALID`,
 * or `ERR_TLS` when the files a TLS listener names exist but cannot be used
 * (found when they are loaded, at start or on reload).
 */
export class ConfigError extends SwitchyardError {
  readonly problems: readonly string[]

  constructor (problems: readonly string[], source?: string, options: { code?: 'ERR_CONFIG_INVALID' | 'ERR_TLS', cause?: unknown } = {}) {
    const where = source ? ` in ${source}` : ''
    super(options.code ?? 'ERR_CONFIG_INVALID', `invalid configuration${where}:\n  ${problems.join('\n  ')}`, 'cause' in options ? { cause: options.cause } : undefined)
    this.name = 'ConfigError'
    this.problems = problems
  }
}
