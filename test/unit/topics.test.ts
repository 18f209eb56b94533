import { describe, expect, test } from 'vitest'
import { filterProblem, hasWildcard, receivedStringProblem, topicMatches, topicNameProblem } from '../../src/topics.js'

/** What the broker does with a string field from the wire: decode it as mqtt-packet does, then check it. */
const received = (hex: string) => {
  const bytes = Buffer.from(hex, 'hex')
  return receivedStringProblem(bytes.toString('utf8'), bytes, 0, bytes.length)
}

describe('received string fields [MQTT-1.5.3]', () => {
  test.each([
    ['ASCII', '612f62'],
    ['U+FFFD itself, EF BF BD', '612fefbfbd'],
    ['2-, 3- and 4-byte sequences', 'c3bce282acf09f9880'],
    ['the last code point, U+10FFFF', 'f48fbfbf'],
    ['empty', '']
  ])('%s is well-formed', (_name, hex) => {
    expect(received(hex)).toBeUndefined()
  })

  test.each([
    ['U+0000', '612f0062', /U\+0000/],
    ['a lone continuation byte', '612f80', /well-formed UTF-8/],
    ['C3 28 (a lead byte, then ASCII)', '612fc328', /well-formed UTF-8/],
    ['a truncated sequence at the end', '612fe282', /well-formed UTF-8/],
    ['an overlong NUL, C0 80', 'c080', /well-formed UTF-8/],
    ['an encoded surrogate, ED A0 80', 'eda080', /well-formed UTF-8/],
    ['past U+10FFFF, F4 90 80 80', 'f4908080', /well-formed UTF-8/],
    ['FF', 'ff', /well-formed UTF-8/],
    ['a real U+FFFD next to a bad byte', 'efbfbdff', /well-formed UTF-8/]
  ])('%s is refused', (_name, hex, problem) => {
    expect(received(hex)).toMatch(problem)
  })

  test('only the field\'s own bytes are read', () => {
    // ill-formed bytes around a well-formed U+FFFD field
    const bytes = Buffer.from('ff00efbfbdff', 'hex')
    expect(receivedStringProblem('\uFFFD', bytes, 2, 5)).toBeUndefined()
  })
})

describe('topic names', () => {
  test.each([
    ['a/b'], ['/'], ['a//b'], ['$SYS/x'], ['ü/😀'], ['\uFFFD']
  ])('%j is valid', (topic) => {
    expect(topicNameProblem(topic)).toBeUndefined()
  })

  test('65,535 bytes is valid; one more is not', () => {
    expect(topicNameProblem('x'.repeat(65535))).toBeUndefined()
    expect(topicNameProblem('é'.repeat(32768))).toMatch(/65535 bytes/)
  })

  test.each([
    ['', /non-empty/], [42, /non-empty/], ['a/+', /wildcards/], ['a/#', /wildcards/], ['#', /wildcards/], ['a+b', /wildcards/],
    ['a/\u0000', /NUL/], ['a/\uD800', /lone surrogate/], ['\uDE00a', /lone surrogate/]
  ])('%j: %s', (topic, problem) => {
    expect(topicNameProblem(topic)).toMatch(problem)
  })

  test('wildcards', () => {
    expect(hasWildcard('a/b')).toBe(false)
    expect(hasWildcard('a/+/b')).toBe(true)
    expect(hasWildcard('a/#')).toBe(true)
  })
})

describe('filters', () => {
  test.each([
    ['a+', '"+" must be a whole level'], ['+a', '"+" must be a whole level'], ['a#', '"#" must be a whole level and the last one'],
    ['#/a', '"#" must be a whole level and the last one'], ['a/\u0000', 'must not contain the NUL character'],
    ['a/\uD800', 'must be well-formed Unicode: it has a lone surrogate [MQTT-1.5.3-1]']
  ])('%j: %s', (filter, problem) => {
    expect(filterProblem(filter)).toBe(problem)
  })

  test('a pair of surrogates is one code point, and valid', () => {
    expect(filterProblem('a/\uD83D\uDE00/#')).toBeUndefined()
  })
})

describe('topicMatches, walked by index, agrees with the plain level-by-level definition', () => {
  // The definition, as MQTT 3.1.1 section 4.7 states it, on split levels.
  const byLevels = (filter: string, topic: string): boolean => {
    if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
    const f = filter.split('/')
    const t = topic.split('/')
    for (let i = 0; i < f.length; i++) {
      if (f[i] === '#') return true
      if (i >= t.length) return false
      if (f[i] !== '+' && f[i] !== t[i]) return false
    }
    return f.length === t.length
  }
  test('on every filter and topic of up to three levels from a, b, ab, empty, +, #, $x', () => {
    const levels = ['a', 'b', 'ab', '', '+', '#', '$x']
    const all: string[] = []
    const grow = (prefix: string[]): void => {
      if (prefix.length > 0) all.push(prefix.join('/'))
      if (prefix.length < 3) for (const l of levels) grow([...prefix, l])
    }
    grow([])
    const topics = all.filter(t => !t.includes('+') && !t.includes('#'))
    const differ = all.flatMap(f => topics.filter(t => topicMatches(f, t) !== byLevels(f, t)).map(t => `${f} ~ ${t}`))
    expect(differ).toEqual([])
    expect(all.length * topics.length).toBeGreaterThan(50_000)
  })
})
