/*
 * The rules directory: every `<name>.js` not starting with '.' or '_' is a
 * rule. A watcher rescans on any change (debounced), and a rescan reports
 * only what changed, by content hash, so saving a file twice reloads once.
 */
import { createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { mkdir, readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from 'pino'

export type RuleFileChange =
  | { kind: 'changed', name: string, file: string, source: string, hash: string }
  | { kind: 'removed', name: string, file: string }

const DEBOUNCE_MS = 50

export function isRuleFile (file: string): boolean {
  return file.endsWith('.js') && !file.startsWith('.') && !file.startsWith('_')
}

export class RuleFiles {
  readonly #dir: string
  readonly #onChanges: (changes: RuleFileChange[]) => Promise<void>
  readonly #logger: Logger
  readonly #known = new Map<string, string>()
  #watcher: FSWatcher | undefined
  #debounce: NodeJS.Timeout | undefined
  #scanning: Promise<void> | undefined
  #again = false
  #closed = false

  constructor (dir: string, onChanges: (changes: RuleFileChange[]) => Promise<void>, logger: Logger) {
    this.#dir = dir
    this.#onChanges = onChanges
    this.#logger = logger
  }

  async start (): Promise<void> {
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
      entries = (await readdir(this.#dir)).filter(isRuleFile).sort()
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
}
