import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

function files (dir: string): string[] {
  return readdirSync(path.join(ROOT, dir)).flatMap(name => {
    const rel = path.join(dir, name)
    if (statSync(path.join(ROOT, rel)).isDirectory()) return name === 'node_modules' ? [] : files(rel)
    return /\.(ts|js|cjs|mjs)$/.test(name) ? [rel] : []
  })
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchors (markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/^#{1,6} (.+)$/gm)].map(m => m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')))
}

const sources = ['src', 'test', 'bench'].flatMap(files)

describe('what code comments point to is in the repository', () => {
  test('no comment points to PITFALLS.md, which is not in the repository', () => {
    const self = path.join('test', 'unit', 'doc-links.test.ts')
    expect(sources.filter(f => f !== self && readFileSync(path.join(ROOT, f), 'utf8').includes('PITFALLS'))).toEqual([])
  })

  test('every docs/<file>.md#<anchor> named in src/, test/ and bench/ exists', () => {
    const broken: string[] = []
    let checked = 0
    for (const file of sources) {
      for (const [ref, doc, anchor] of readFileSync(path.join(ROOT, file), 'utf8').matchAll(/docs\/([\w.-]+\.md)(?:#([\w-]+))?/g)) {
        const target = path.join(ROOT, 'docs', doc!)
        checked++
        if (!existsSync(target)) broken.push(`${file}: ${ref}: no such file`)
        else if (anchor !== undefined && !anchors(readFileSync(target, 'utf8')).has(anchor)) broken.push(`${file}: ${ref}: no such heading`)
      }
    }
    expect(checked).toBeGreaterThan(0)
    expect(broken).toEqual([])
  })
})
