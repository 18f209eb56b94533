import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const DOC = path.join(ROOT, 'docs', 'architecture.md')

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes (as doc-links.test.ts). */
function anchors (markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/^#{1,6} (.+)$/gm)].map(m => m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-')))
}

test('every file, folder and heading docs/architecture.md links to exists', () => {
  const text = readFileSync(DOC, 'utf8')
  const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map(m => m[1]!).filter(l => !/^[a-z]+:/.test(l))
  const broken = links.filter(link => {
    const [file, anchor] = link.split('#') as [string, string | undefined]
    const target = path.resolve(path.dirname(DOC), file)
    if (!existsSync(target)) return true
    return anchor !== undefined && !anchors(readFileSync(target, 'utf8')).has(anchor)
  })
  expect(links.length).toBeGreaterThan(40)
  expect(broken).toEqual([])
})

test('the README links to docs/architecture.md', () => {
  expect(readFileSync(path.join(ROOT, 'README.md'), 'utf8')).toContain('(docs/architecture.md)')
})
