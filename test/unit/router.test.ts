import { describe, expect, test } from 'vitest'
import { Router } from '../../src/router.js'
import { outputTopicProblem, checkExports } from '../../src/rules/validate.js'
import { filterProblem } from '../../src/topics.js'

const match = (r: Router, topic: string) => [...r.match(topic)].sort()

describe('Router', () => {
  test('MQTT wildcard semantics', () => {
    const r = new Router()
    r.set('plus', ['sensors/+/temperature'])
    r.set('hash', ['sensors/#'])
    r.set('exact', ['sensors/a/temperature'])
    expect(match(r, 'sensors/a/temperature')).toEqual(['exact', 'hash', 'plus'])
    expect(match(r, 'sensors/b/temperature')).toEqual(['hash', 'plus'])
    expect(match(r, 'sensors')).toEqual(['hash']) // [MQTT-4.7.1-2] '#' includes the parent
    expect(match(r, 'sensors//temperature')).toEqual(['hash', 'plus']) // '+' matches an empty level
    expect(match(r, 'other/a/temperature')).toEqual([])
  })

  test('a rule with overlapping filters is matched once', () => {
    const r = new Router()
    r.set('twice', ['a/#', 'a/+', 'a/b'])
    expect(match(r, 'a/b')).toEqual(['twice'])
  })

  test('wildcards at the first level do not match $ topics [MQTT-4.7.2-1]', () => {
    const r = new Router()
    r.set('all', ['#'])
    r.set('first', ['+/info'])
    r.set('sys', ['$SYS/#'])
    expect(match(r, '$SYS/info')).toEqual(['sys'])
    expect(match(r, '$other/info')).toEqual([])
    expect(match(r, 'x/info')).toEqual(['all', 'first'])
  })

  test('set replaces and delete removes', () => {
    const r = new Router()
    r.set('r', ['a/#'])
    r.set('r', ['b/#'])
    expect(match(r, 'a/1')).toEqual([])
    expect(match(r, 'b/1')).toEqual(['r'])
    r.delete('r')
    expect(match(r, 'b/1')).toEqual([])
  })

  test('a thousand rules, one match', () => {
    const r = new Router()
    for (let i = 0; i < 1000; i++) r.set(`rule${i}`, [`site/${i}/+/temperature`])
    expect(match(r, 'site/537/dev/temperature')).toEqual(['rule537'])
  })
})

describe('validation', () => {
  test.each([
    ['a/b', undefined], ['a/+/c', undefined], ['#', undefined], ['a/#', undefined], ['+', undefined],
    ['', 'must be a non-empty string'], ['a/#/c', '"#" must be a whole level and the last one'],
    ['a#', '"#" must be a whole level and the last one'], ['a/b+', '"+" must be a whole level'], [42, 'must be a non-empty string']
  ])('filter %j', (filter, problem) => {
    expect(filterProblem(filter)).toBe(problem)
  })

  test('output topics', () => {
    expect(outputTopicProblem('devices/a/telemetry')).toBeUndefined()
    expect(outputTopicProblem('$SYS/broker/uptime')).toMatch(/\$SYS/)
    expect(outputTopicProblem('a/+')).toMatch(/wildcards/)
  })

  test('exports: every problem at once, and limits may only be lowered', () => {
    const max = { timeoutMs: 100, memoryLimitMb: 32 }
    expect(checkExports({ topics: ['a/#/b', 'ok'], qos: 3, limits: { timeoutMs: 500, cpu: 1 }, convertType: 'undefined' }, max)).toEqual({
      problems: [
        'export function convert(msg) is missing',
        'topics[0] "a/#/b": "#" must be a whole level and the last one',
        'qos must be 0, 1 or 2; got 3',
        "limits.timeoutMs 500 is above the broker's rules.timeoutMs 100; a rule may only lower its limits",
        'limits.cpu: unknown; only timeoutMs and memoryLimitMb can be set'
      ]
    })
    expect(checkExports({ topics: ['a/+'], qos: 1, limits: { memoryLimitMb: 16 }, convertType: 'function' }, max)).toEqual({
      meta: { topics: ['a/+'], qos: 1, limits: { timeoutMs: 100, memoryLimitMb: 16 } }
    })
  })
})
