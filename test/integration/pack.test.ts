import { execFile } from 'node:child_process'
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { SHIPPED_EXAMPLES } from '../helpers/rules.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const EXAMPLE_FILES = SHIPPED_EXAMPLES.flatMap(name => [`rules/${name}.js`, `rules/${name}.test.json`]).sort()

/** The rules/ entries `npm pack` would ship from `dir` (scripts off: no build). */
async function packed (dir: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir })
  const [pack] = JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>
  return pack!.files.map(f => f.path).sort()
}

async function packedRules (dir: string): Promise<string[]> {
  return (await packed(dir)).filter(p => p.startsWith('rules/'))
}

describe('npm pack ships the example rules only', () => {
  test('the rules/ entries of the package are exactly the shipped examples and their fixtures', async () => {
    expect(await packedRules(ROOT)).toEqual(EXAMPLE_FILES)
  })

  test('a rule a user adds to rules/ is never packed', async () => {
    const dir = tempDir()
    copyFileSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'))
    mkdirSync(path.join(dir, 'rules'))
    for (const file of EXAMPLE_FILES) copyFileSync(path.join(ROOT, file), path.join(dir, file))
    writeFileSync(path.join(dir, 'rules', 'my-plant.js'), `export const topics = ['a']; export function convert () {}`)
    writeFileSync(path.join(dir, 'rules', 'my-plant.test.json'), '{ "cases": [] }')
    expect(await packedRules(dir)).toEqual(EXAMPLE_FILES)
  })
})

// An application that embeds Switchyard imports the vendored, patched Aedes
// from the package itself (dist/broker/aedes.js -> ../../vendor/aedes).
test('the package ships the vendored Aedes the broker imports', async () => {
  const files = await packed(ROOT)
  for (const f of ['vendor/aedes/aedes.js', 'vendor/aedes/package.json', 'vendor/aedes/LICENSE', 'vendor/aedes/lib/client.js', 'vendor/aedes/lib/handlers/connect.js']) {
    expect(files).toContain(f)
  }
})
