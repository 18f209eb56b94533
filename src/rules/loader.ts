/*
 * The rules directory: every `<name>.js` not starting with '.' or '_' is a
 * rule. A watcher rescans on any change (debounced), and a rescan reports
 * only what changed, by content hash, so saving a file twice reloads once.
 * Only the top level is read, and only `.js`: one extension keeps one name
 * per rule (`x.js` and `x.mjs` would both be rule `x`). What looks meant as a
 * rule but is not loaded (`x.mjs`, a subdirectory) is logged once.
 */
import { createHash } from 'node:crypto'
import { watch, type Dirent, type FSWatcher } from 'node:fs'
import { mkdir, readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'
import type { RuleFileChange, RuleSource } from './contracts.js'

const DEBOUNCE_MS = 50

export function isRuleFile (file: string): boolean {
  return file.endsWith('.js') && !file.startsWith('.') && !file.startsWith('_')
}

/** Why an entry of the rules directory that looks meant as a rule is not loaded; undefined for rules and for what is plainly not one. */
export function ignoredReason (entry: Pick<Dirent, 'name' | 'isDirectory'>): string | undefined {
  const { name } = entry
  if (name.startsWith('.') || name.startsWith('_')) return undefined // drafts, by convention
  if (entry.isDirectory()) return 'subdirectories are not read: rules are loaded from the top level of the rules directory only; move the file up to load it'
  const ext = /\.(mjs|cjs|mts|cts|ts)$/.exec(name)?.[1]
  if (ext === undefined) return undefined
  const base = name.slice(0, -ext.length - 1)
  if (ext === 'mjs') return `rule files are named <name>.js (they are ES modules all the same); rename it to ${base}.js to load it`
  if (ext === 'cjs') return `rule files are ES modules named <name>.js; CommonJS is not supported: use export, and rename it to ${base}.js`
  return `rules are JavaScript: compile it to ${base}.js`
}

/** The rules directory as a RuleSource for the engine. */
export class RuleFiles implements RuleSource {
  readonly #dir: string
  #onChanges: (changes: RuleFileChange[]) => Promise<void> = async () => {}
  readonly #logger: Logger
  readonly #known = new Map<string, string>()
  /** Ignored entries already logged, so each is logged once while it stays. */
  readonly #ignored = new Set<string>()
  #watcher: FSWatcher | undefined
  #debounce: NodeJS.Timeout | undefined
  #scanning: Promise<void> | undefined
  #again = false
  #closed = false

  constructor (dir: string, logger: Logger) {
    this.#dir = dir
    this.#logger = logger
  }

  async start (onChanges: (changes: RuleFileChange[]) => Promise<void>): Promise<void> {
    this.#onChanges = onChanges
    await mkdir(this.#dir, { recursive: true })
    await this.rescan()
    if (this.#closed) return
    this.#watcher = watch(this.#dir, () => {
      clearTimeout(this.#debounce)
      this.#debounce = setTimeout(() => { void this.rescan() }, DEBOUNCE_MS)
    })
    this.#watcher.on('error', err => this.#logger.error({ dir: this.#dir, err: err.message }, 'watching the rules directory failed; changes need a restart'))
  }

  /** Scans now; a scan asked for during another runs right after it. */
  rescan (): Promise<void> {
    if (this.#scanning) {
      this.#again = true
      return this.#scanning
    }
    this.#scanning = (async () => {
      do {
        this.#again = false
        await this.#scan()
      } while (this.#again && !this.#closed)
      this.#scanning = undefined
    })()
    return this.#scanning
  }

  close (): void {
    this.#closed = true
    clearTimeout(this.#debounce)
    this.#watcher?.close()
  }

  async #scan (): Promise<void> {
    let entries: string[]
    try {
      const dirents = await readdir(this.#dir, { withFileTypes: true })
      this.#logIgnored(dirents)
      entries = dirents.filter(d => !d.isDirectory() && isRuleFile(d.name)).map(d => d.name).sort()
    } catch (err) {
      this.#logger.error({ dir: this.#dir, err: (err as Error).message }, 'cannot read the rules directory')
      return
    }
    const changes: RuleFileChange[] = []
    const present = new Set<string>()
    for (const file of entries) {
      const name = file.slice(0, -3)
      present.add(name)
      let source: string
      try {
        source = await readFile(path.join(this.#dir, file), 'utf8')
      } catch (err) {
        // Removed between readdir and read, or unreadable: the next event rescans.
        this.#logger.warn({ file, err: (err as Error).message }, 'cannot read rule file')
        present.delete(name)
        continue
      }
      const hash = createHash('sha256').update(source).digest('hex')
      if (this.#known.get(name) === hash) continue
      this.#known.set(name, hash)
      changes.push({ kind: 'changed', name, file: path.join(this.#dir, file), source, hash })
    }
    for (const name of [...this.#known.keys()]) {
      if (present.has(name)) continue
      this.#known.delete(name)
      changes.push({ kind: 'removed', name, file: path.join(this.#dir, `${name}.js`) })
    }
    if (changes.length > 0 && !this.#closed) await this.#onChanges(changes)
  }

  #logIgnored (dirents: Dirent[]): void {
    const seen = new Set<string>()
    for (const d of dirents) {
      const reason = ignoredReason(d)
      if (reason === undefined) continue
      seen.add(d.name)
      if (this.#ignored.has(d.name)) continue
      this.#ignored.add(d.name)
      this.#logger.warn({ file: path.join(this.#dir, d.name), reason }, `ignored in the rules directory: ${d.name}`)
    }
    for (const name of this.#ignored) if (!seen.has(name)) this.#ignored.delete(name)
  }
}
