/*
 * Who may connect, publish, subscribe and receive: the password file and the
 * ACL file of Mosquitto, loaded at start and again on reload (SIGHUP). A
 * reload that fails keeps the previous state.
 */
import { readFile } from 'node:fs/promises'
import type { Config } from '../config.js'
import { compileAccess, parseAcl, type Acl, type Who } from './acl.js'
import { FailureBackoff } from './backoff.js'
import { parsePasswordFile, verifyPassword, type LineError, type PasswordHash } from './passwords.js'

export interface ConnectAttempt {
  clientId: string
  username: string | undefined
  password: Buffer | undefined
  /** The certificate's CN, on a listener with useIdentityAsUsername. */
  identity: string | undefined
  /** Peer IP address, for backoff. */
  address: string
}

export type AuthResult = { ok: true, username: string | null } | { ok: false, reason: string, delayMs: number }

/** One client's access, compiled once per connection and ACL version. */
export interface ClientAccess {
  readonly generation: number
  canWrite(topic: string): boolean
  canRead(topic: string): boolean
  canSubscribe(filter: string): boolean
}

const OPEN: Omit<ClientAccess, 'generation'> = { canWrite: () => true, canRead: () => true, canSubscribe: () => true }

export class Authenticator {
  readonly #config: Config['auth']
  readonly #backoff = new FailureBackoff()
  #users: Map<string, PasswordHash> | undefined
  #acl: Acl | undefined
  #generation = 0
  #warnings: string[] = []

  private constructor (config: Config['auth']) {
    this.#config = config
  }

  /** Loads the files; throws with every `file:line: problem` if they are not valid. */
  static async load (config: Config['auth']): Promise<Authenticator> {
    const auth = new Authenticator(config)
    const problems = await auth.reload()
    if (problems.length > 0) throw new Error(problems.join('\n'))
    return auth
  }

  get hasAcl (): boolean { return this.#acl !== undefined }
  /**
   * `file:line: problem` for lines of the last ACL file read that are valid
   * (Mosquitto accepts them too) but most likely a typo: logged at load and
   * reload, printed by `switchyard check`.
   */
  get warnings (): readonly string[] { return this.#warnings }
  get generation (): number { return this.#generation }

  /** Re-reads both files. On any problem, keeps the previous state and returns the problems. */
  async reload (): Promise<string[]> {
    const problems: string[] = []
    const users = await readParsed(this.#config.passwordFile, text => {
      const { users, errors } = parsePasswordFile(text)
      return { value: users, errors }
    }, problems)
    const warnings: string[] = []
    const acl = await readParsed(this.#config.aclFile, text => {
      const parsed = parseAcl(text)
      warnings.push(...parsed.warnings.map(w => `${this.#config.aclFile}:${w.line}: ${w.message}`))
      return { value: parsed.acl, errors: parsed.errors }
    }, problems)
    this.#warnings = warnings
    if (problems.length > 0) return problems
    this.#users = users
    this.#acl = acl
    this.#generation++
    return []
  }

  async authenticate (attempt: ConnectAttempt): Promise<AuthResult> {
    const result = await this.#check(attempt)
    if (result.ok) {
      this.#backoff.succeed(attempt.address)
      return result
    }
    return { ok: false, reason: result.reason, delayMs: this.#backoff.fail(attempt.address) }
  }

  async #check (a: ConnectAttempt): Promise<{ ok: true, username: string | null } | { ok: false, reason: string }> {
    // A verified client certificate is the identity; no password is asked.
    if (a.identity !== undefined) return { ok: true, username: a.identity }
    if (this.#users !== undefined && a.username !== undefined) {
      const stored = this.#users.get(a.username)
      // Unknown users cost a hash too, so timing does not tell which names exist.
      const ok = await verifyPassword(stored ?? DUMMY, a.password ?? Buffer.alloc(0))
      return ok && stored ? { ok: true, username: a.username } : { ok: false, reason: 'bad username or password' }
    }
    // Anonymous (or, with no password file, an unverified username, as in Mosquitto).
    const anonymousAllowed = this.#config.allowAnonymous ?? (this.#config.passwordFile === undefined)
    if (anonymousAllowed) return { ok: true, username: a.username ?? null }
    return { ok: false, reason: a.username === undefined ? 'anonymous clients are not allowed' : 'bad username or password' }
  }

  /** The access of one client. Without an ACL file, everything is allowed. */
  access (who: Who): ClientAccess {
    const acl = this.#acl
    const generation = this.#generation
    return { generation, ...(acl === undefined ? OPEN : compileAccess(acl, who)) }
  }
}

/** Reads and parses one optional file, adding `file:line: problem` lines to `problems`. */
async function readParsed<T> (file: string | undefined, parse: (text: string) => { value: T, errors: LineError[] }, problems: string[]): Promise<T | undefined> {
  if (file === undefined) return undefined
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    problems.push(`${file}: ${(err as Error).message}`)
    return undefined
  }
  const { value, errors } = parse(text)
  problems.push(...errors.map(e => `${file}:${e.line}: ${e.message}`))
  return value
}

// Verifies against this when the user is unknown: same cost, always false.
const DUMMY: PasswordHash = { kind: 'pbkdf2', iterations: 10_000, salt: Buffer.alloc(12), hash: Buffer.alloc(64, 1) }
