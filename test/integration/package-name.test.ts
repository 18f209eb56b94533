import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8')

// `switchyard` on npm is an unrelated package (an express.js router).
describe('the package is switchyard-mqtt, the command switchyard', () => {
  test('package.json and package-lock.json agree', () => {
    const pkg = JSON.parse(read('package.json')) as { name: string, bin: Record<string, string> }
    const lock = JSON.parse(read('package-lock.json')) as { name: string, packages: Record<string, { name: string }> }
    expect(pkg.name).toBe('switchyard-mqtt')
    expect(pkg.bin).toEqual({ switchyard: 'bin/switchyard.js' })
    expect([lock.name, lock.packages['']!.name]).toEqual(['switchyard-mqtt', 'switchyard-mqtt'])
  })

  test("the name resolves to the public API (as import 'switchyard-mqtt' in a user's project)", async () => {
    // A package may import itself by name through its "exports": the same resolution a dependent gets.
    const { stdout } = await promisify(execFile)(process.execPath, ['--no-node-snapshot', '--input-type=module', '-e',
      "const m = await import('switchyard-mqtt'); console.log(typeof m.createBroker, typeof m.ConfigError)"], { cwd: ROOT })
    expect(stdout.trim()).toBe('function function')
  })

  test('the docs import it by that name', () => {
    for (const file of ['README.md', 'docs/errors.md']) {
      const imports = [...read(file).matchAll(/from '(switchyard[^']*)'/g)].map(m => m[1])
      expect(imports.length, file).toBeGreaterThan(0)
      expect(new Set(imports), file).toEqual(new Set(['switchyard-mqtt']))
    }
  })
})
