import { readFileSync } from 'node:fs'
import { expect, test } from 'vitest'

// docs/errors.md is the table users look codes up in: every code the code
// base can throw has its row, and no row names a code that no longer exists.
test('every ErrorCode has a row in docs/errors.md, and every row a code', () => {
  const source = readFileSync(new URL('../../src/errors.ts', import.meta.url), 'utf8')
  const union = source.slice(source.indexOf('export type ErrorCode'), source.indexOf('export class'))
  const codes = [...union.matchAll(/'(ERR_[A-Z_]+)'/g)].map(m => m[1]).sort()
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')
  const rows = [...doc.matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map(m => m[1]).sort()
  expect(codes.length).toBeGreaterThan(5)
  expect(rows).toEqual(codes)
})
