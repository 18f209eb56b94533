/*
 * The rules directory: every `<name>.js` or `<name>.ts` not starting with
 * '.' or '_' is a rule. A watcher rescans on any change (debounced), and a
 * rescan reports only what changed, by content hash, so saving a file twice
 * reloads once. Only the top level is read, and only `.js` and `.ts` (types
 * stripped, typescript.ts): one name per rule, so `x.mjs` is not read, and
 * of `x.js` and `x.ts` side by side only `x.js` loads. What looks meant as a
 * rule but is not loaded (`x.mjs`, a subdirectory, that `x.ts`) is logged once.
 */
import { createHash } from 'node:crypto'
import { watch, type Dirent, type FSWatcher } from 'node:fs'
import { mkdir, readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'
import type { RuleFileChange, RuleSource } from './contracts.js'
import { isTypeScriptRule, ruleModuleSource } from './typescript.js'

const DEBOUNCE_MS = 50

export function isRuleFile (file: string): boolean {
  return (file.endsWith('.js') || isTypeScriptRule(file)) && !file.startsWith('.') && !file.startsWith('_')
}

/** A rule file's rule name: its file name without `.js` or `.ts`. */
export function ruleName (file: string): string {
  return path.basename(file).replace(/\.(js|ts)$/, '')
}

/**
 * The rule files among `names`, one per rule name: `x.js` wins over `x.ts`
 * (a compiled rule next to its source); the losers, with why.
 */
export function pickRuleFiles (names: readonly string[]): { files: string[], hidden: Array<{ file: string, reason: string }> } {
  const files = names.filter(isRuleFile).sort()
  const js = new Set(files.filter(f => f.endsWith('.js')).map(ruleName))
  const hidden = files.filter(f => f.endsWith('.ts') && js.has(ruleName(f)))
    .map(f => ({ file: f, reason: `${ruleName(f)}.js is also there, and one name is one rule: ${f} is not loaded; remove one of the two` }))
  return { files: files.filter(f => !(f.endsWith('.ts') && js.has(ruleName(f)))), hidden }
}

/** Why an entry of the rules directory that looks meant as a rule is not loaded; undefined for rules and for what is plainly not one. */
export function ignoredReason (entry: Pick<Dirent, 'name' | 'isDirectory'>): string | undefined {
  const { name } = entry
  if (name.startsWith('.') || name.startsWith('_')) return undefined // drafts, by convention
  if (entry.isDirectory()) return 'subdirectories are not read: rules are loaded from the top level of the rules directory only; move the file up to load it'
  const ext = /\.(mjs|cjs|mts|cts)$/.exec(name)?.[1]
  if (ext === undefined) return undefined
  const base = name.slice(0, -ext.length - 1)
  if (ext === 'mjs') return `rule files are named <name>.js (they are ES modules all the same); rename it to ${base}.js to load it`
  if (ext === 'cjs') return `rule files are ES modules named <name>.js; CommonJS is not supported: use export, and rename it to ${base}.js`
  return `TypeScript rule files are named <name>.ts (ES modules all the same); rename it to ${base}.ts to load it`
}

/** The rules directory as a RuleSource for the engine. */
export class RuleFiles implements RuleSource {
  readonly #dir: string
  #onChanges: (changes: RuleFileChange[]) => Promise<void> = async () => {}
  readonly #logger: Logger
  /** Each rule's content hash and file. */
  readonly #known = new Map<string, { hash: string, file: string }>()
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
      const picked = pickRuleFiles(dirents.filter(d => !d.isDirectory()).map(d => d.name))
      this.#logIgnored(dirents, picked.hidden)
      entries = picked.files
    } catch (err) {
      this.#logger.error({ dir: this.#dir, err: (err as Error).message }, 'cannot read the rules directory')
      return
    }
    const changes: RuleFileChange[] = []
    const present = new Set<string>()
    for (const file of entries) {
      const name = ruleName(file)
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
      const known = this.#known.get(name)
      if (known?.hash === hash && known.file === file) continue
      this.#known.set(name, { hash, file })
      const where = path.join(this.#dir, file)
      // A .ts file loads with its types stripped; what cannot be stripped fails its load.
      const module = ruleModuleSource(where, source)
      changes.push('error' in module
        ? { kind: 'changed', name, file: where, source: '', hash, error: module.error }
        : { kind: 'changed', name, file: where, source: module.source, hash })
    }
    for (const [name, { file }] of [...this.#known]) {
      if (present.has(name)) continue
      this.#known.delete(name)
      changes.push({ kind: 'removed', name, file: path.join(this.#dir, file) })
    }
    if (changes.length > 0 && !this.#closed) await this.#onChanges(changes)
  }

  #logIgnored (dirents: Dirent[], hidden: Array<{ file: string, reason: string }>): void {
    const seen = new Set<string>()
    const reasons = new Map(hidden.map(s => [s.file, s.reason]))
    for (const d of dirents) {
      const reason = reasons.get(d.name) ?? ignoredReason(d)
      if (reason === undefined) continue
      seen.add(d.name)
      if (this.#ignored.has(d.name)) continue
      this.#ignored.add(d.name)
      this.#logger.warn({ file: path.join(this.#dir, d.name), reason }, `ignored in the rules directory: ${d.name}`)
    }
    for (const name of this.#ignored) if (!seen.has(name)) this.#ignored.delete(name)
  }
}
