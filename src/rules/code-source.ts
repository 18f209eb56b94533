/*
 * Rules added from code (broker.rules.add/remove), as a RuleSource next to
 * the rules directory (loader.ts). The engine treats both alike: the same
 * sandbox, limits, status and $SYS reporting. One name, one rule: a name the
 * rules directory holds cannot be added from code, and a rule file named as a
 * code rule is ignored (and logged) while the code rule exists.
 */
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { SwitchyardError } from '../errors.js'
import type { RuleFileChange, RuleSource } from './contracts.js'
import { ruleNameProblem } from './validate.js'

/** What a code rule's `file` reads as, in broker.rules() and on $SYS. */
export const codeFile = (name: string) => `code:${name}`

/** Rules added and removed by the application. */
export class CodeRules implements RuleSource {
  #onChanges: ((changes: RuleFileChange[]) => Promise<void>) | undefined
  readonly #names = new Set<string>()
  #closed = false

  async start (onChanges: (changes: RuleFileChange[]) => Promise<void>): Promise<void> {
    this.#onChanges = onChanges
  }

  has (name: string): boolean { return this.#names.has(name) }

  /** Loads (or replaces) a rule; resolves once the load has been tried. */
  async add (name: string, source: string): Promise<void> {
    if (this.#closed || !this.#onChanges) throw new SwitchyardError('ERR_CLOSED', 'rules.add(): the broker is closed')
    this.#names.add(name)
    const hash = createHash('sha256').update(source).digest('hex')
    await this.#onChanges([{ kind: 'changed', name, file: codeFile(name), source, hash }])
  }

  /** Removes a rule added from code; false when there is none of that name. */
  async remove (name: string): Promise<boolean> {
    if (!this.#names.delete(name) || !this.#onChanges || this.#closed) return false
    await this.#onChanges([{ kind: 'removed', name, file: codeFile(name) }])
    return true
  }

  async rescan (): Promise<void> {}

  close (): void { this.#closed = true }
}

/** The rules directory (when there is one) and the code rules, as the engine's one RuleSource. */
export class RuleSources implements RuleSource {
  readonly #files: RuleSource | undefined
  readonly code = new CodeRules()
  readonly #fileNames = new Set<string>()
  readonly #logger: Logger

  constructor (files: RuleSource | undefined, logger: Logger) {
    this.#files = files
    this.#logger = logger
  }

  async start (onChanges: (changes: RuleFileChange[]) => Promise<void>): Promise<void> {
    await this.code.start(onChanges)
    await this.#files?.start(changes => onChanges(changes.filter(change => this.#fromFiles(change))))
  }

  /** Checks a rules.add() input; throws ERR_INVALID_RULE on what no rule could be. */
  check (name: unknown, source: unknown): asserts name is string {
    if (typeof name !== 'string' || name.length === 0) throw new SwitchyardError('ERR_INVALID_RULE', 'rules.add({ name, source }): name must be a non-empty string')
    const problem = ruleNameProblem(name)
    if (problem !== undefined) throw new SwitchyardError('ERR_INVALID_RULE', `rules.add(): rule name ${JSON.stringify(name)}: a rule name must not contain +, # or / (it is a topic level of $SYS/switchyard/rules/<name>)`)
    if (typeof source !== 'string') throw new SwitchyardError('ERR_INVALID_RULE', `rules.add(): rule ${name}: source must be a string holding the rule module`)
    if (this.#fileNames.has(name)) throw new SwitchyardError('ERR_INVALID_RULE', `rules.add(): rule ${name} comes from the rules directory; choose another name, or remove the file`)
  }

  isFileRule (name: string): boolean { return this.#fileNames.has(name) }

  rescan (): Promise<void> { return this.#files?.rescan() ?? Promise.resolve() }

  close (): void {
    this.code.close()
    this.#files?.close()
  }

  #fromFiles (change: RuleFileChange): boolean {
    if (this.code.has(change.name)) {
      if (change.kind === 'changed') this.#logger.warn({ rule: change.name, file: change.file }, `rule file ignored: a rule named ${change.name} was added from code`)
      return false
    }
    if (change.kind === 'changed') this.#fileNames.add(change.name)
    else this.#fileNames.delete(change.name)
    return true
  }
}
