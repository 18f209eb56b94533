import { describe, expect, test } from 'vitest'
import { parseFixture } from '../../src/rules/fixtures.js'

const parse = (value: unknown) => parseFixture(JSON.stringify(value))
const input = { topic: 'a/b', payload: 'x' }

describe('fixture files are validated like the config', () => {
  test('a valid fixture parses', () => {
    expect(parse({ cases: [{ name: 'n', input, expect: [] }, { input: { topic: 't', payloadHex: '00ff' }, expectError: 'boom' }] }))
      .toEqual({ cases: [{ name: 'n', input, expect: [] }, { input: { topic: 't', payloadHex: '00ff' }, expectError: 'boom' }] })
  })

  test('a misspelt key is an error naming the key and the fix, said once', () => {
    expect(parse({ cases: [{ inptu: input, expect: [] }] })).toEqual({ problems: ['cases[0].inptu: unknown key; did you mean `input`?'] })
    // not "expect 0 outputs"
    expect(parse({ cases: [{ input, expected: [{ topic: 'x' }] }] })).toEqual({ problems: ['cases[0].expected: unknown key; did you mean `expect`?'] })
    expect(parse({ cases: [{ input }] })).toEqual({ problems: [
      'cases[0]: needs "expect": [...] (the outputs; [] for none) or "expectError": "<part of the message>", and has neither'
    ] })
    expect(parse({ cases: [{ input: { ...input, payloadhex: '00' }, expect: [{ topic: 'x', reatin: true }] }] })).toEqual({ problems: [
      'cases[0].input.payloadhex: unknown key; did you mean `payloadHex`?',
      'cases[0].expect[0].reatin: unknown key; did you mean `retain`?'
    ] })
    expect(parse({ tests: [] })).toEqual({ problems: ['tests: unknown key; expected "cases"', 'cases: is required'] })
  })

  test('wrong types and missing fields name the key', () => {
    expect(parse({ cases: [{ input: { payload: 1 }, expect: [{ topic: 'x', qos: 3 }] }] })).toEqual({ problems: [
      'cases[0].input.topic: is required',
      'cases[0].input.payload: expected string, got 1',
      'cases[0].expect[0].qos: must be 0, 1 or 2'
    ] })
    expect(parse({ cases: [{ input: { topic: 'a' }, expect: [], expectError: 'x' }] })).toEqual({ problems: [
      'cases[0].input: needs "payload" (text; "" for an empty payload) or "payloadHex"',
      'cases[0]: needs "expect": [...] (the outputs; [] for none) or "expectError": "<part of the message>", not both'
    ] })
    expect(parse([])).toEqual({ problems: ['(top level): expected { "cases": [...] }, got []'] })
    expect(parseFixture('{ "cases": ')).toEqual({ problems: [expect.stringMatching(/^not valid JSON: /)] })
  })
})
