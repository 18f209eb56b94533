import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { SwitchyardError, type Message } from '../../src/index.js'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { barrier, routed } from '../helpers/barrier.js'
import { connect, inbox } from '../helpers/client.js'
import { runCli } from '../helpers/cli.js'
import { rule, startWithRules, until } from '../helpers/rules.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const V5 = { protocolVersion: 5 } as const

// Every property a v5 publisher can give an application message.
const EVERY_PROPERTY = {
  userProperties: { site: 'north', tag: ['a', 'b'] },
  contentType: 'application/json',
  responseTopic: 'replies/app-1',
  correlationData: Buffer.from([0, 1, 0xfe, 0xff]),
  messageExpiryInterval: 120,
  payloadFormatIndicator: true
}

// Shows what the rule saw in msg.properties, and sets every property on its output.
const ECHO = `export const topics = ['in/#']
export function convert (msg) {
  const p = msg.properties
  const seen = { ...p, correlationDataIsBytes: p.correlationData instanceof Uint8Array, correlationData: p.correlationData && Array.from(p.correlationData) }
  return {
    topic: 'out/echo',
    payload: seen,
    properties: {
      userProperties: { ...p.userProperties, by: 'echo' },
      contentType: 'application/json',
      responseTopic: 'replies/from-rule',
      correlationData: p.correlationData ?? 'none',
      messageExpiryInterval: 60,
      payloadFormatIndicator: true
    }
  }
}`

describe('rules see MQTT 5 properties', () => {
  test('a v5 publish with every property reaches the rule; its output, with properties, reaches v5 subscribers and the bus', async () => {
    const { broker } = await startWithRules({ 'echo.js': ECHO })
    const v5 = await connect(urlFor(broker), V5)
    const v3 = await connect(urlFor(broker))
    await v5.subscribeAsync('out/#', { qos: 1 })
    await v3.subscribeAsync('out/#', { qos: 1 })
    const onBus = routed(broker, 'out/#')
    const input = routed(broker, 'in/#')
    const dev = await connect(urlFor(broker), V5)
    await dev.publishAsync('in/a', 'x', { qos: 1, properties: EVERY_PROPERTY })
    // the bus sees the client's message with its properties
    expect((await input)[0]!.properties).toEqual(EVERY_PROPERTY)

    const [received] = await inbox(v5).waitFor(1)
    const seen = JSON.parse(received!.payload)
    expect(seen.messageExpiryInterval).toBeGreaterThanOrEqual(119) // what is left of 120 s
    expect(seen.messageExpiryInterval).toBeLessThanOrEqual(120)
    expect(seen).toEqual({
      userProperties: { site: 'north', tag: ['a', 'b'] },
      contentType: 'application/json',
      responseTopic: 'replies/app-1',
      correlationData: [0, 1, 0xfe, 0xff],
      correlationDataIsBytes: true,
      messageExpiryInterval: seen.messageExpiryInterval,
      payloadFormatIndicator: true
    })
    const props = received!.packet.properties!
    expect(props.messageExpiryInterval).toBeGreaterThanOrEqual(59)
    expect({ ...props, messageExpiryInterval: 60 }).toEqual({
      userProperties: { site: 'north', tag: ['a', 'b'], by: 'echo' },
      contentType: 'application/json',
      responseTopic: 'replies/from-rule',
      correlationData: Buffer.from([0, 1, 0xfe, 0xff]),
      messageExpiryInterval: 60,
      payloadFormatIndicator: true
    })
    // a 3.1.1 subscriber gets the message, without properties
    const [plain] = await inbox(v3).waitFor(1)
    expect(plain).toMatchObject({ topic: 'out/echo', payload: received!.payload })
    expect(plain!.packet.properties).toBeUndefined()
    // broker.subscribe() sees the output with its properties and origin
    const [message] = await onBus
    expect(message!.origin).toMatchObject({ kind: 'rule', rule: 'echo' })
    expect(message!.properties).toEqual({
      userProperties: { site: 'north', tag: ['a', 'b'], by: 'echo' },
      contentType: 'application/json',
      responseTopic: 'replies/from-rule',
      correlationData: Buffer.from([0, 1, 0xfe, 0xff]),
      messageExpiryInterval: 60,
      payloadFormatIndicator: true
    })
  })

  test('a 3.1.1 publisher\'s message gives the rule msg.properties {}, and the bus no properties', async () => {
    const { broker } = await startWithRules({
      'show.js': `export const topics = ['in/#']
        export function convert (msg) { return { topic: 'out/show', payload: { properties: msg.properties, type: Object.prototype.toString.call(msg.properties) } } }`
    })
    const app = await connect(urlFor(broker), V5)
    await app.subscribeAsync('out/#')
    const seen: Message[] = []
    broker.subscribe('in/#', m => { seen.push(m) })
    const dev = await connect(urlFor(broker))
    await dev.publishAsync('in/a', 'x', { qos: 1 })
    const [received] = await inbox(app).waitFor(1)
    expect(JSON.parse(received!.payload)).toEqual({ properties: {}, type: '[object Object]' })
    // the output was published without properties: none on the v5 subscriber's side
    expect(received!.packet.properties ?? {}).toEqual({})
    expect(seen).toHaveLength(1)
    expect(seen[0]!.properties).toBeUndefined()
  })

  test('bad output properties fail the conversion, as the rule\'s failure, and nothing is published', async () => {
    const bad = [
      "{ responseTopic: 'replies/#' }",
      "{ topicAlias: 3 }",
      "{ correlationdata: 'x' }",
      "{ correlationData: 5 }",
      "{ messageExpiryInterval: -1 }",
      "{ userProperties: { n: 1 } }",
      "{ contentType: 'a\\u0000b' }",
      "'text/plain'"
    ]
    const { broker } = await startWithRules({
      // one input per bad output; a barrier marker goes out on barrier/out, after them (one rule publishes in input order)
      'bad.js': `export const topics = ['b']
        const bad = [${bad.join(', ')}]
        export function convert (m) {
          if (m.payload.startsWith('barrier')) return { topic: 'barrier/out', payload: m.payload }
          return [{ topic: 'ok/first', payload: 'x' }, { topic: 'out/bad', payload: 'x', properties: bad[Number(m.payload)] }]
        }`
    })
    const spy = await connect(urlFor(broker), V5)
    await spy.subscribeAsync(['ok/#', 'out/#', 'barrier/out'])
    const pub = await connect(urlFor(broker), V5)
    for (let i = 0; i < bad.length; i++) await pub.publishAsync('b', String(i))
    await barrier(pub, spy, 'b', { arrivesOn: 'barrier/out' })
    expect(inbox(spy).messages).toEqual([]) // not even the valid first output: a rule never half-publishes
    const state = rule(broker, 'bad')
    expect(state).toMatchObject({ matched: bad.length + 1, failed: bad.length, outputs: 1 })
    // lastErrors keeps the last 5
    expect(state.lastErrors.map(e => e.error.split('\n')[0])).toEqual([
      'TypeError: output 1: properties.correlationData: must be bytes (a Uint8Array) or a string (sent as UTF-8)',
      'output 1: properties.messageExpiryInterval: must be a whole number of seconds from 0 to 4294967295; got number -1',
      'TypeError: output 1: properties.userProperties: "n": must be a string or an array of strings',
      'output 1: properties.contentType: must not contain U+0000 [MQTT-1.5.4-2]',
      'TypeError: output 1: properties must be an object { userProperties, contentType, responseTopic, correlationData, messageExpiryInterval, payloadFormatIndicator } (any of them)'
    ])
  })

  test('the first three bad properties are named too: a wildcard response topic, an unknown or misspelt property', async () => {
    const { broker } = await startWithRules({
      'bad.js': `export const topics = ['b']
        const bad = [{ responseTopic: 'replies/#' }, { topicAlias: 3 }, { correlationdata: 'x' }]
        export function convert (m) { return { topic: 'out/bad', payload: 'x', properties: bad[Number(m.payload)] } }`
    })
    const pub = await connect(urlFor(broker), V5)
    for (let i = 0; i < 3; i++) await pub.publishAsync('b', String(i))
    await until(() => rule(broker, 'bad').failed === 3, 'three failures')
    expect(rule(broker, 'bad').lastErrors.map(e => e.error.split('\n')[0])).toEqual([
      'output 0: properties.responseTopic: must not contain wildcards (+ or #) [MQTT-3.3.2-2]; got "replies/#"',
      'TypeError: output 0: properties.topicAlias: not a property an output can set (the properties are userProperties, contentType, responseTopic, correlationData, messageExpiryInterval, payloadFormatIndicator)',
      'TypeError: output 0: properties.correlationdata: not a property an output can set; did you mean correlationData? (the properties are userProperties, contentType, responseTopic, correlationData, messageExpiryInterval, payloadFormatIndicator)'
    ])
  })
})

describe('the MQTT 5 RPC example, end to end', () => {
  test('a v5 requester gets the device\'s reply on its Response Topic, with its own Correlation Data; tb-rpc, loaded too, stays out of it', async () => {
    const { broker } = await startWithRules({}, { examples: ['mqtt5-rpc.js', 'tb-rpc.js'] })
    const device = await connect(urlFor(broker), { ...V5, clientId: 'SN-001' })
    await device.subscribeAsync('tb/mqtt-integration-tutorial/sensors/SN-001/rx/twoway', { qos: 1 })
    // An MQTT 5 device: reply to its Response Topic with its Correlation Data.
    device.on('message', (_topic, _payload, packet) => {
      const { responseTopic, correlationData } = packet.properties!
      void device.publishAsync(responseTopic!, '{"rpcReceived":"OK"}', { qos: 1, properties: { correlationData: correlationData!, contentType: 'application/json' } })
    })
    const app = await connect(urlFor(broker), V5)
    await app.subscribeAsync('app/console-1/replies', { qos: 1 })
    const correlationData = Buffer.from('c0ffee01', 'hex')
    await app.publishAsync('devices/SN-001/rpc/call', JSON.stringify({ method: 'setValue', params: '"42"' }), {
      qos: 1,
      properties: { responseTopic: 'app/console-1/replies', correlationData }
    })
    const [reply] = await inbox(app).waitFor(1)
    expect(reply).toMatchObject({ topic: 'app/console-1/replies', payload: '{"rpcReceived":"OK"}', qos: 1 })
    expect(reply!.packet.properties).toEqual({ correlationData, contentType: 'application/json', userProperties: { device: 'SN-001' } })
    // the device got the tutorial's command, and never the application's Response Topic
    const [command] = inbox(device).messages
    expect(JSON.parse(command!.payload)).toEqual({ value: 42 })
    expect(command!.packet.properties).toMatchObject({ responseTopic: 'tb/mqtt-integration-tutorial/sensors/SN-001/rx/response', correlationData })
    expect(rule(broker, 'mqtt5-rpc')).toMatchObject({ matched: 2, outputs: 2, failed: 0 })
    // settled (matched is counted before the conversion, dropped after)
    await until(() => rule(broker, 'tb-rpc').dropped === 1, 'tb-rpc to leave the reply')
    expect(rule(broker, 'tb-rpc')).toMatchObject({ matched: 1, outputs: 0, failed: 0 })
  })

  test('the ThingsBoard two-way flow still works beside it, with a 3.1.1 device', async () => {
    const { broker } = await startWithRules({}, { examples: ['mqtt5-rpc.js', 'tb-rpc.js'] })
    const device = await connect(urlFor(broker), { clientId: 'SN-001' })
    await device.subscribeAsync('tb/mqtt-integration-tutorial/sensors/SN-001/rx/twoway', { qos: 1 })
    device.on('message', () => { void device.publishAsync('tb/mqtt-integration-tutorial/sensors/SN-001/rx/response', '{"rpcReceived":"OK"}', { qos: 1 }) })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('devices/SN-001/rpc/response/+', { qos: 1 })
    await app.publishAsync('devices/SN-001/rpc/request/7', JSON.stringify({ method: 'setValue', params: 40, twoway: true }), { qos: 1 })
    expect((await inbox(app).waitFor(1))[0]).toMatchObject({ topic: 'devices/SN-001/rpc/response/7', payload: '{"rpcReceived":"OK"}' })
    await until(() => rule(broker, 'mqtt5-rpc').dropped === 1, 'mqtt5-rpc to leave the reply')
    expect(rule(broker, 'mqtt5-rpc')).toMatchObject({ matched: 1, outputs: 0, failed: 0 })
  })
})

describe('broker.publish() with properties', () => {
  test('a v5 subscriber receives them; the bus and rules see them', async () => {
    const broker = await startBroker({ rules: { dir: null } })
    const sub = await connect(urlFor(broker), V5)
    await sub.subscribeAsync('api/#', { qos: 1 })
    const onBus = routed(broker, 'api/#')
    await broker.publish({ topic: 'api/x', payload: 'p', qos: 1, properties: { ...EVERY_PROPERTY, correlationData: 'req-9', messageExpiryInterval: 300 } })
    const [received] = await inbox(sub).waitFor(1)
    const expected = { ...EVERY_PROPERTY, correlationData: Buffer.from('req-9'), messageExpiryInterval: 300 }
    expect({ ...received!.packet.properties, messageExpiryInterval: 300 }).toEqual(expected)
    expect((await onBus)[0]!.properties).toEqual(expected)
  })

  test('bad properties are ERR_INVALID_PROPERTIES, naming the property, and nothing is published', async () => {
    const broker = await startBroker({ rules: { dir: null } })
    const sub = await connect(urlFor(broker), V5)
    await sub.subscribeAsync('api/#')
    const problems: string[] = []
    for (const properties of [
      { responseTopic: 'a/+' },
      { corelationData: 'x' },
      { userProperties: { k: ['a', 2] } },
      { messageExpiryInterval: 1.5 },
      { payloadFormatIndicator: 1 },
      { correlationData: Buffer.alloc(65536) },
      'text/plain'
    ]) {
      const err = await broker.publish({ topic: 'api/bad', payload: 'x', properties: properties as never }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(SwitchyardError)
      expect((err as SwitchyardError).code).toBe('ERR_INVALID_PROPERTIES')
      problems.push((err as Error).message)
    }
    expect(problems).toEqual([
      'cannot publish to api/bad: properties.responseTopic: must not contain wildcards (+ or #) [MQTT-3.3.2-2]; got "a/+"',
      'cannot publish to api/bad: properties.corelationData: not a property that can be set; did you mean `correlationData`? (the properties are userProperties, contentType, responseTopic, correlationData, messageExpiryInterval, payloadFormatIndicator)',
      'cannot publish to api/bad: properties.userProperties: "k": must be a string; got number 2',
      'cannot publish to api/bad: properties.messageExpiryInterval: must be a whole number of seconds from 0 to 4294967295; got number 1.5',
      'cannot publish to api/bad: properties.payloadFormatIndicator: must be true (the payload is UTF-8 text) or false; got number 1',
      'cannot publish to api/bad: properties.correlationData: is 65536 bytes; binary data holds at most 65535 [MQTT-1.5.6]',
      'cannot publish to api/bad: properties must be an object { userProperties, contentType, responseTopic, correlationData, messageExpiryInterval, payloadFormatIndicator } (any of them); got "text/plain"'
    ])
    await barrier(broker, sub, 'api/barrier')
    expect(inbox(sub).messages).toEqual([])
  })
})

describe('switchyard rule test --property', () => {
  test('properties reach msg.properties, and outputs print theirs', async () => {
    const result = await runCli(['rule', 'test', path.join('rules', 'mqtt5-rpc.js'),
      '--topic', 'devices/SN-001/rpc/call', '--payload', '{"params":"42"}',
      '--property', 'responseTopic=app/replies', '--property', 'correlationData=req-1',
      '--property', 'messageExpiryInterval=30', '--property', 'user.origin=console'], ROOT)
    expect(result).toMatchObject({ code: 0, stderr: '' })
    expect(JSON.parse(result.stdout)).toEqual([{
      topic: 'tb/mqtt-integration-tutorial/sensors/SN-001/rx/twoway',
      qos: 1,
      retain: false,
      payload: '{"value":42}',
      properties: { responseTopic: 'tb/mqtt-integration-tutorial/sensors/SN-001/rx/response', correlationDataHex: Buffer.from('req-1').toString('hex'), messageExpiryInterval: 30 }
    }])
  })

  test('every kind of property, user properties repeated, correlation data as hex', async () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'show.js'), `export const topics = ['in/#']
      export function convert (msg) { return { topic: 'out', payload: { ...msg.properties, correlationData: Array.from(msg.properties.correlationData) } } }`)
    const result = await runCli(['rule', 'test', 'show.js', '--topic', 'in/a', '--payload', 'x',
      '--property', 'user.tag=a', '--property', 'user.tag=b', '--property', 'user.site=north',
      '--property', 'contentType=text/plain', '--property', 'responseTopic=r/t', '--property', 'correlationDataHex=00ff',
      '--property', 'messageExpiryInterval=9', '--property', 'payloadFormatIndicator=true'], dir)
    expect(result).toMatchObject({ code: 0, stderr: '' })
    expect(JSON.parse(JSON.parse(result.stdout)[0].payload)).toEqual({
      userProperties: { tag: ['a', 'b'], site: 'north' },
      contentType: 'text/plain',
      responseTopic: 'r/t',
      correlationData: [0, 255],
      messageExpiryInterval: 9,
      payloadFormatIndicator: true
    })
  })

  test('a bad --property is a usage error (exit 2), naming it', async () => {
    const base = ['rule', 'test', 'rules/mqtt5-rpc.js', '--topic', 'devices/SN-001/rpc/call', '--payload', '{}']
    const cases: Array<[string, string]> = [
      ['responseTopic=a/#', 'switchyard: --property responseTopic: must not contain wildcards (+ or #) [MQTT-3.3.2-2]; got "a/#"'],
      ['corelationData=x', 'switchyard: --property "corelationData=x": unknown property "corelationData"; did you mean correlationData?'],
      ['contentType', 'switchyard: --property "contentType": write it as key=value'],
      ['messageExpiryInterval=soon', 'switchyard: --property messageExpiryInterval needs a whole number of seconds; got "soon"']
    ]
    for (const [property, message] of cases) {
      const result = await runCli([...base, '--property', property], ROOT)
      expect(result.code).toBe(2)
      expect(result.stderr).toContain(message)
    }
  })

  test('switchyard help shows --property', async () => {
    const result = await runCli(['help'], ROOT)
    expect(result.stdout).toContain('--property <k>=<v>')
    expect(result.stdout).toContain('user.<name>=<value>')
  })
})
