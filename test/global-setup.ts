import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/*
 * vitest globalSetup, named by every vitest config of the repo. The rule host
 * and the CLI tests run dist/, not src/: without a build they wait on a
 * process that never starts and fail on 20 s timeouts. So build first when
 * dist/ is missing or older than src/ (tsc takes about 5 s here); when
 * dist/ is current, as after `npm test`'s own build, this costs one walk of
 * the two trees.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Why dist/ under `root` must be rebuilt, or undefined when it is current. */
export function staleBuild (root: string): string | undefined {
  const built = newest(path.join(root, 'dist'))
  if (built === undefined) return 'missing'
  const inputs = Math.max(newest(path.join(root, 'src')) ?? 0, newest(path.join(root, 'tsconfig.json')) ?? 0)
  // tsc writes every output on each build, so the newest output is the build's time.
  return inputs > built ? 'older than src/' : undefined
}

/** The newest modification time of a file, or of any file below a directory. */
function newest (file: string): number | undefined {
  if (!existsSync(file)) return undefined
  const stat = statSync(file)
  if (!stat.isDirectory()) return stat.mtimeMs
  let latest: number | undefined
  for (const entry of readdirSync(file)) {
    const t = newest(path.join(file, entry))
    if (t !== undefined && (latest === undefined || t > latest)) latest = t
  }
  return latest
}

export default function setup (): void {
  const reason = staleBuild(ROOT)
  if (reason === undefined) return
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  try {
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'pipe' })
  } catch (err) {
    const output = String((err as { stdout?: Buffer }).stdout ?? '') + String((err as { stderr?: Buffer }).stderr ?? '')
    // tsc emits despite type errors. Tests run what it emitted, as they run
    // test files without type-checking them; `npm test` and `npm run
    // typecheck` fail on type errors. Nothing emitted is an error.
    if (staleBuild(ROOT) !== undefined) throw new Error(`dist/ is ${reason} and the build failed; fix the errors below, then run npm run build\n${output}`)
    console.warn(`test/global-setup.ts: built dist/, with type errors (npm run build fails on them):\n${output}`)
  }
}
