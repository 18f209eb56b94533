import { describe, expect, test } from 'vitest'
import { checkExports } from '../../src/rules/validate.js'

const max = { timeoutMs: 100, memoryLimitMb: 32 }
const base = { topics: ['a/#'] as unknown, qos: undefined, limits: undefined, convertType: 'function', convertKind: 'Function', defaultType: 'undefined' }
const problems = (exp: Partial<typeof base>) => {
  const checked = checkExports({ ...base, ...exp }, max)
  return 'problems' in checked ? checked.problems : []
}

describe('rule exports: each load error names its cause', () => {
  test('topics as a string must be an array, not "missing"', () => {
    expect(problems({ topics: 'a/#' })).toEqual(["topics must be an array of MQTT topic filters, e.g. export const topics = ['a/#']; got a string, \"a/#\""])
    expect(problems({ topics: [] })).toEqual(["topics is empty: name one or more MQTT topic filters, e.g. export const topics = ['a/+/filter']"])
    expect(problems({ topics: undefined })).toEqual(["export const topics = ['a/+/filter'] is missing: name one or more MQTT topic filters"])
  })

  test('a default export is not used', () => {
    expect(problems({ convertType: 'undefined', convertKind: 'Undefined', defaultType: 'function' }))
      .toEqual(['the default export is not used; export a named function convert: `export function convert (msg) {...}`'])
    expect(problems({ topics: undefined, convertType: 'undefined', convertKind: 'Undefined', defaultType: 'object' }))
      .toEqual(['the default export is not used; export each part by name: `export const topics = [...]` and `export function convert (msg) {...}`'])
  })

  test('an async or generator convert is refused, with the reason', () => {
    expect(problems({ convertKind: 'AsyncFunction' })).toEqual([expect.stringMatching(/^convert is an async function: it must be synchronous and return its outputs/)])
    expect(problems({ convertKind: 'GeneratorFunction' })).toEqual([expect.stringMatching(/^convert is a generator function/)])
  })

  test('a plain convert with an array of topics loads', () => {
    expect(checkExports(base, max)).toEqual({ meta: { topics: ['a/#'], qos: undefined, limits: max } })
  })
})
