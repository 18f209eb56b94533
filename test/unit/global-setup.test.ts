import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { staleBuild } from '../global-setup.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

function tree (files: Record<string, number>): string {
  const root = tempDir()
  for (const [file, seconds] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true })
    writeFileSync(path.join(root, file), '')
    utimesSync(path.join(root, file), seconds, seconds)
  }
  return root
}

describe('the suite builds dist/ first (test/global-setup.ts)', () => {
  test('dist/ missing, or older than any file of src/ or tsconfig.json, needs a build', () => {
    expect(staleBuild(tree({ 'src/a.ts': 100, 'tsconfig.json': 100 }))).toBe('missing')
    expect(staleBuild(tree({ 'src/a.ts': 100, 'src/rules/b.ts': 300, 'dist/a.js': 200, 'dist/rules/b.js': 200 }))).toBe('older than src/')
    expect(staleBuild(tree({ 'src/a.ts': 100, 'tsconfig.json': 300, 'dist/a.js': 200 }))).toBe('older than src/')
    expect(staleBuild(tree({ 'src/a.ts': 100, 'src/rules/b.ts': 150, 'tsconfig.json': 50, 'dist/a.js': 200 }))).toBeUndefined()
  })

  test('every vitest config of the repo runs it', async () => {
    const configs = readdirSync(ROOT).filter(f => /^vitest(\..+)?\.config\.[cm]?[jt]s$/.test(f))
    expect(configs).toContain('vitest.config.ts')
    for (const file of configs) {
      const { default: config } = await import(path.join(ROOT, file)) as { default: { test?: { globalSetup?: string | string[] } } }
      expect([config.test?.globalSetup].flat(), file).toContain('./test/global-setup.ts')
    }
  })
})
