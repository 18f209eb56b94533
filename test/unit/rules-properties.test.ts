/*
 * MQTT 5 properties: the checks broker.publish() and rule outputs share
 * (src/properties.ts), how the engine carries them both ways, fixtures and
 * `rule test --property`. End to end, with real clients:
 * test/integration/rules-mqtt5.test.ts.
 */
import { describe, expect, test } from 'vitest'
import { parseProperties } from '../../src/cli/rule-test.js'
import type { Message } from '../../src/message.js'
import { checkProperties, expiryLeft, propertiesOf } from '../../src/properties.js'
import { parseFixture } from '../../src/rules/fixtures.js'
import { messageProperties, outputsProblem } from '../../src/rules/outputs.js'
import { fakeEngine, from } from '../helpers/rules-fakes.js'

describe('checkProperties', () => {
  test('valid properties come back with correlation data as a Buffer copy; undefined values and an empty object are nothing', () => {
    const bytes = new Uint8Array([1, 2])
    const checked = checkProperties({ userProperties: { a: '1', b: ['x', 'y'] }, contentType: 't', responseTopic: 'r/t', correlationData: bytes, messageExpiryInterval: 0, payloadFormatIndicator: false, contentTypo: undefined })
    expect(checked).toEqual({ properties: { userProperties: { a: '1', b: ['x', 'y'] }, contentType: 't', responseTopic: 'r/t', correlationData: Buffer.from([1, 2]), messageExpiryInterval: 0, payloadFormatIndicator: false } })
    bytes[0] = 9
    expect((checked as { properties: { correlationData: Buffer } }).properties.correlationData[0]).toBe(1)
    expect(checkProperties({ correlationData: 'req' })).toEqual({ properties: { correlationData: Buffer.from('req') } })
    expect(checkProperties({})).toEqual({ properties: undefined })
    expect(checkProperties(undefined)).toEqual({ properties: undefined })
  })

  test.each<[unknown, string]>([
    [null, 'properties must be an object'],
    [[], 'properties must be an object'],
    [{ topicAlias: 1 }, 'properties.topicAlias: not a property that can be set (the properties are'],
    [{ ContentType: 'x' }, 'properties.ContentType: not a property that can be set; did you mean `contentType`?'],
    [{ responseTopic: '' }, 'properties.responseTopic: must be a non-empty string'],
    [{ responseTopic: 'a/#' }, 'properties.responseTopic: must not contain wildcards'],
    [{ contentType: 'x'.repeat(65536) }, 'properties.contentType: is 65536 bytes as UTF-8; a string holds at most 65535 [MQTT-1.5.4]'],
    [{ contentType: '\uD800' }, 'properties.contentType: must be well-formed Unicode'],
    [{ userProperties: { 'a\u0000': 'x' } }, 'properties.userProperties: the name "a\\u0000" must not contain U+0000'],
    [{ userProperties: { a: [] } }, 'properties.userProperties: "a": an empty array sends nothing; leave the name out'],
    [{ userProperties: 'a=b' }, 'properties.userProperties: must be an object of names to strings'],
    [{ correlationData: [1, 2] }, 'properties.correlationData: must be bytes (a Uint8Array or Buffer) or a string (sent as UTF-8); got an array'],
    [{ messageExpiryInterval: 2 ** 32 }, 'properties.messageExpiryInterval: must be a whole number of seconds from 0 to 4294967295'],
    [{ payloadFormatIndicator: 'utf8' }, 'properties.payloadFormatIndicator: must be true (the payload is UTF-8 text) or false']
  ])('%j: %s', (value, problem) => {
    const checked = checkProperties(value)
    expect('problem' in checked && checked.problem).toContain(problem)
  })
})

test('a rule sees what is left of a message\'s expiry interval when its turn comes, rounded up, never below 0', () => {
  const routed = 1_000_000
  expect(expiryLeft(60, routed, routed)).toBe(60)
  expect(expiryLeft(60, routed, routed + 1)).toBe(60)
  expect(expiryLeft(60, routed, routed + 1000)).toBe(59)
  expect(expiryLeft(60, routed, routed + 59_001)).toBe(1)
  expect(expiryLeft(60, routed, routed + 60_000)).toBe(0)
  expect(expiryLeft(60, routed, routed + 90_000)).toBe(0)
  expect(expiryLeft(0, routed, routed)).toBe(0)
})

test('propertiesOf keeps the six application properties of a parsed packet, and nothing for a 3.1.1 one', () => {
  expect(propertiesOf({ properties: { topicAlias: undefined, subscriptionIdentifier: 3, contentType: 'c', correlationData: Buffer.from('x') } }))
    .toEqual({ contentType: 'c', correlationData: Buffer.from('x') })
  expect(propertiesOf({ properties: { topicAlias: undefined } })).toBeUndefined()
  expect(propertiesOf({})).toBeUndefined()
})

test('outputs: properties are checked with the output, and become a Message\'s (correlation data as a Buffer)', () => {
  expect(outputsProblem([{ topic: 'a', payload: 'x', properties: { responseTopic: 'r/+' } }], 100)).toMatch(/^output 0: properties.responseTopic: must not contain wildcards/)
  expect(outputsProblem([{ topic: 'a', payload: 'x', properties: { correlationData: new Uint8Array(3), messageExpiryInterval: 5 } }], 100)).toBeUndefined()
  expect(messageProperties({ correlationData: 'id', contentType: 'c' })).toEqual({ correlationData: Buffer.from('id'), contentType: 'c' })
  expect(messageProperties(undefined)).toBeUndefined()
})

describe('the engine carries properties both ways', () => {
  test('into the rule host as plain data (correlation data as its own bytes); out as the output\'s Message properties', async () => {
    const seen: Message[] = []
    const { engine, runner } = await fakeEngine({ r: { topics: ['in'] } }, { publisher: { publish: async m => { seen.push(m) } } })
    const pooled = Buffer.from('__corr__').subarray(2, 6) // a view into a larger buffer
    engine.route({ ...from('c1', 'in'), properties: { correlationData: pooled, userProperties: { k: 'v' }, messageExpiryInterval: 10 } })
    engine.route(from('c1', 'in'))
    const [withProps, without] = runner.pending.map(p => p.msg)
    const { correlationData, ...rest } = withProps!.properties!
    expect(rest).toEqual({ userProperties: { k: 'v' }, messageExpiryInterval: 10 })
    expect(Buffer.from(correlationData!).toString()).toBe('corr')
    expect(correlationData!.buffer.byteLength).toBe(4) // a copy, not the pooled buffer (IPC would send that whole)
    expect(without!.properties).toBeUndefined()
    runner.answer(() => ({ kind: 'ok', outputs: [{ topic: 'out', payload: 'x', properties: { correlationData: new Uint8Array([7]), responseTopic: 'r' } }, { topic: 'plain', payload: 'y' }], logs: [] }))
    await engine.close()
    const outputs = seen.filter(m => !m.topic.startsWith('$SYS/'))
    expect(outputs.map(m => [m.topic, m.properties])).toEqual([
      ['out', { correlationData: Buffer.from([7]), responseTopic: 'r' }], ['plain', undefined],
      ['out', { correlationData: Buffer.from([7]), responseTopic: 'r' }], ['plain', undefined]
    ])
    expect('properties' in outputs[1]!).toBe(false)
  })
})

describe('fixtures express properties', () => {
  const parse = (value: unknown) => parseFixture(JSON.stringify(value))

  test('in inputs and expected outputs', () => {
    const properties = { userProperties: { a: 'b', c: ['d', 'e'] }, contentType: 't', responseTopic: 'r', correlationData: 'x', messageExpiryInterval: 3, payloadFormatIndicator: true }
    const cases = [{ input: { topic: 't', payload: '', properties }, expect: [{ topic: 'o', properties: { correlationDataHex: '00ff' } }] }]
    expect(parse({ cases })).toEqual({ cases })
  })

  test('a misspelt property, a wrong type, both forms of correlation data: named', () => {
    expect(parse({ cases: [{ input: { topic: 't', payload: '', properties: { corelationData: 'x' } }, expect: [] }] }))
      .toEqual({ problems: ['cases[0].input.properties.corelationData: unknown key; did you mean `correlationData`?'] })
    expect(parse({ cases: [{ input: { topic: 't', payload: '', properties: { userProperties: { a: 1 }, messageExpiryInterval: -1 } }, expect: [{ topic: 'o', properties: { userProperties: { b: [] } } }] }] }))
      .toEqual({ problems: [
        'cases[0].input.properties.userProperties.a: must be a string or an array of strings',
        'cases[0].input.properties.messageExpiryInterval: must be at least 0',
        'cases[0].expect[0].properties.userProperties.b: an empty array sends nothing; leave the name out'
      ] })
    expect(parse({ cases: [{ input: { topic: 't', payload: '', properties: { correlationData: 'x', correlationDataHex: '00' } }, expect: [{ topic: 'o', properties: { correlationData: 'x', correlationDataHex: '00' } }] }] }))
      .toEqual({ problems: [
        'cases[0].input.properties: give "correlationData" or "correlationDataHex", not both',
        'cases[0].expect[0].properties: give "correlationData" or "correlationDataHex", not both'
      ] })
  })
})

describe('rule test --property', () => {
  test('key=value, user properties repeated into an array, typed values', () => {
    expect(parseProperties([])).toEqual({ properties: undefined })
    expect(parseProperties(['user.a=1', 'user.a=2', 'user.a=3', 'user.b=x=y', 'contentType=text/plain', 'responseTopic=r/t', 'correlationDataHex=00FF', 'messageExpiryInterval=60', 'payloadFormatIndicator=false'])).toEqual({ properties: {
      userProperties: { a: ['1', '2', '3'], b: 'x=y' },
      contentType: 'text/plain',
      responseTopic: 'r/t',
      correlationDataHex: '00FF',
      messageExpiryInterval: 60,
      payloadFormatIndicator: false
    } })
    expect(parseProperties(['correlationData=req-1', 'contentType='])).toEqual({ properties: { correlationData: 'req-1', contentType: '' } })
  })

  test.each<[string[], string]>([
    [['contentType'], '--property "contentType": write it as key=value'],
    [['user.=x'], '--property "user.=x": a user property needs a name: user.<name>=<value>'],
    [['usr.a=x'], 'unknown property "usr.a"; did you mean user.<name>?'],
    [['contenttype=x'], 'unknown property "contenttype"; did you mean contentType?'],
    [['contentType=a', 'contentType=b'], '--property contentType is given twice (only user properties repeat)'],
    [['correlationDataHex=abc'], '--property correlationDataHex needs an even number of hex digits'],
    [['correlationData=a', 'correlationDataHex=00'], 'give --property correlationData or correlationDataHex, not both'],
    [['messageExpiryInterval=-1'], '--property messageExpiryInterval needs a whole number of seconds; got "-1"'],
    [['messageExpiryInterval=4294967296'], '--property messageExpiryInterval: must be a whole number of seconds from 0 to 4294967295'],
    [['payloadFormatIndicator=1'], '--property payloadFormatIndicator needs true (UTF-8 text) or false; got "1"'],
    [['responseTopic=a/+'], '--property responseTopic: must not contain wildcards']
  ])('%j: %s', (options, problem) => {
    const parsed = parseProperties(options)
    expect('problem' in parsed && parsed.problem).toContain(problem)
  })
})
