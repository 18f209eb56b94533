import { describe, expect, test } from 'vitest'
import { urlFor } from '../helpers/broker.js'
import { barrier, routed } from '../helpers/barrier.js'
import { connect, inbox } from '../helpers/client.js'
import { rule, startWithRules, until } from '../helpers/rules.js'

describe('the ThingsBoard tutorial, end to end with the shipped rules', () => {
  test('uplink: a sensor reading becomes normalized telemetry', async () => {
    const { broker } = await startWithRules({}, { examples: ['tb-uplink.js'] })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('devices/+/telemetry', { qos: 1 })
    const sensor = await connect(urlFor(broker), { clientId: 'SN-001' })
    await sensor.publishAsync('tb/mqtt-integration-tutorial/sensors/SN-001/temperature', '{"value":25.1}')
    const [msg] = await inbox(app).waitFor(1)
    expect(msg).toMatchObject({ topic: 'devices/SN-001/telemetry', qos: 1, retain: false })
    expect(JSON.parse(msg!.payload)).toEqual({ temperature: 25.1 })
    expect(rule(broker, 'tb-uplink')).toMatchObject({ status: 'running', matched: 1, outputs: 1, failed: 0 })
  })

  test('downlink: an RPC request reaches the device on .../rx', async () => {
    const { broker } = await startWithRules({}, { examples: ['tb-rpc.js'] })
    const device = await connect(urlFor(broker), { clientId: 'SN-001' })
    await device.subscribeAsync('tb/mqtt-integration-tutorial/sensors/SN-001/rx', { qos: 1 })
    const app = await connect(urlFor(broker))
    await app.publishAsync('devices/SN-001/rpc/request/1', JSON.stringify({ method: 'setValue', params: '"42"' }), { qos: 1 })
    const [cmd] = await inbox(device).waitFor(1)
    expect(JSON.parse(cmd!.payload)).toEqual({ value: 42 })
  })

  test('two-way RPC: the device reply comes back on the request\'s response topic', async () => {
    const { broker } = await startWithRules({}, { examples: ['tb-rpc.js'] })
    const device = await connect(urlFor(broker), { clientId: 'SN-001' })
    await device.subscribeAsync('tb/mqtt-integration-tutorial/sensors/SN-001/rx/twoway', { qos: 1 })
    // the tutorial's simulated device: reply to every two-way call
    device.on('message', () => { void device.publishAsync('tb/mqtt-integration-tutorial/sensors/SN-001/rx/response', '{"rpcReceived":"OK"}', { qos: 1 }) })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('devices/SN-001/rpc/response/+', { qos: 1 })
    await app.publishAsync('devices/SN-001/rpc/request/7', JSON.stringify({ method: 'setValue', params: 40, twoway: true }), { qos: 1 })
    const [reply] = await inbox(app).waitFor(1)
    expect(reply).toMatchObject({ topic: 'devices/SN-001/rpc/response/7', payload: '{"rpcReceived":"OK"}' })
    expect(JSON.parse(inbox(device).messages[0]!.payload)).toEqual({ value: 40 })
  })

  test('the embedding application can send the downlink with broker.publish()', async () => {
    const { broker } = await startWithRules({}, { examples: ['tb-rpc.js'] })
    const device = await connect(urlFor(broker))
    await device.subscribeAsync('tb/mqtt-integration-tutorial/sensors/+/rx')
    await broker.publish({ topic: 'devices/SN-002/rpc/request/9', payload: '{"params":5}', qos: 1 })
    expect((await inbox(device).waitFor(1))[0]).toMatchObject({ topic: 'tb/mqtt-integration-tutorial/sensors/SN-002/rx', payload: '{"value":5}' })
  })

  test('binary input: the LoRa-style decoder reads msg.bytes', async () => {
    const { broker } = await startWithRules({}, { examples: ['lora-decoder.js'] })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('devices/+/telemetry')
    const gateway = await connect(urlFor(broker))
    await gateway.publishAsync('lora/70B3D57ED0001234/up', Buffer.from('ff9c140bb8', 'hex'))
    expect(JSON.parse((await inbox(app).waitFor(1))[0]!.payload)).toEqual({ temperature: -10, humidity: 20, batteryMv: 3000 })
  })

  test('Peakboard shop floor: station codes become retained named states', async () => {
    const { broker } = await startWithRules({}, { examples: ['peakboard-shopfloor.js'] })
    const plc = await connect(urlFor(broker))
    const stored = routed(broker, 'factory/stations/+/state', 2)
    for (const [station, code] of [['station1', '100'], ['station2', '300']]) await plc.publishAsync(`shopfloor/${station}/`, code!)
    await until(() => rule(broker, 'peakboard-shopfloor').outputs === 2, 'two outputs')
    await stored // routed, so retained
    const dashboard = await connect(urlFor(broker)) // opens later, sees every station (retained)
    await dashboard.subscribeAsync('factory/stations/+/state')
    const states = (await inbox(dashboard).waitFor(2)).map(m => JSON.parse(m.payload).state).sort()
    expect(states).toEqual(['fault', 'running'])
  })
})

describe('the rule contract', () => {
  test('msg carries topic, payload, bytes, qos, retain, clientId, username and timestamp', async () => {
    const { broker } = await startWithRules({
      'echo.js': `export const topics = ['in/#']
        export function convert (msg) {
          return { topic: 'out/echo', payload: { ...msg, bytes: Array.from(msg.bytes), bytesIsUint8Array: msg.bytes instanceof Uint8Array, timestampType: typeof msg.timestamp } }
        }`
    })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('out/#')
    const dev = await connect(urlFor(broker), { clientId: 'dev-7', username: 'alice', password: Buffer.from('x') })
    await dev.publishAsync('in/a', 'hé', { qos: 1, retain: true })
    const echo = JSON.parse((await inbox(app).waitFor(1))[0]!.payload)
    expect(echo).toMatchObject({
      topic: 'in/a', payload: 'hé', bytes: [0x68, 0xc3, 0xa9], bytesIsUint8Array: true,
      qos: 1, retain: true, clientId: 'dev-7', username: 'alice', timestampType: 'number'
    })
  })

  test('outputs: one, several, strings as-is, bytes as bytes, anything else as JSON; null drops', async () => {
    const { broker } = await startWithRules({
      'forms.js': `export const topics = ['forms/+']
        export function convert (msg) {
          if (msg.payload === 'none') return null
          return [
            { topic: 'o/string', payload: 'plain text' },
            { topic: 'o/bytes', payload: new Uint8Array([0, 255]) },
            { topic: 'o/json', payload: { a: [1, 2] }, qos: 2, retain: true },
            { topic: 'o/number', payload: 42 }
          ]
        }`
    })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('o/#', { qos: 2 })
    const pub = await connect(urlFor(broker))
    await pub.publishAsync('forms/x', 'none')
    await pub.publishAsync('forms/x', 'go')
    const msgs = await inbox(app).waitFor(4)
    // Sorted: MQTT.js hands a QoS 2 message over only at PUBREL, so QoS 0 ones may overtake it.
    expect(msgs.map(m => [m.topic, m.packet.payload.toString('hex'), m.qos]).sort()).toEqual([
      ['o/bytes', '00ff', 0],
      ['o/json', Buffer.from('{"a":[1,2]}').toString('hex'), 2],
      ['o/number', Buffer.from('42').toString('hex'), 0],
      ['o/string', Buffer.from('plain text').toString('hex'), 0]
    ])
    expect(rule(broker, 'forms')).toMatchObject({ matched: 2, outputs: 4, dropped: 1, failed: 0 })
  })

  test('module-level state persists between calls', async () => {
    const { broker } = await startWithRules({
      'count.js': `export const topics = ['c']; let n = 0
        export function convert () { n++; return { topic: 'count', payload: String(n) } }`
    })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('count')
    for (let i = 0; i < 3; i++) await app.publishAsync('c', 'x')
    expect((await inbox(app).waitFor(3)).map(m => m.payload)).toEqual(['1', '2', '3'])
  })

  test('an output to $SYS/ is refused and counted as a failure', async () => {
    const { broker } = await startWithRules({
      // a marker goes out on barrier/out, after the refused output (one rule publishes in input order)
      'sys.js': `export const topics = ['s']; export function convert (m) { return m.payload.startsWith('barrier') ? { topic: 'barrier/out', payload: m.payload } : { topic: '$SYS/forged/uptime', payload: 'forged' } }`
    })
    const spy = await connect(urlFor(broker))
    await spy.subscribeAsync(['$SYS/forged/#', 'barrier/out'])
    const pub = await connect(urlFor(broker))
    await pub.publishAsync('s', 'x')
    await until(() => rule(broker, 'sys').failed === 1, 'the failure')
    expect(rule(broker, 'sys').lastErrors[0]!.error).toMatch(/\$SYS/)
    await barrier(pub, spy, 's', { arrivesOn: 'barrier/out' })
    expect(inbox(spy).messages).toEqual([])
  })

  test('outputs keep the QoS and retain flags through the broker, and persistent sessions queue them', async () => {
    const { broker } = await startWithRules({
      'q.js': `export const topics = ['q/in']; export const qos = 1
        export function convert (m) { return { topic: 'q/out', payload: m.payload } }`
    })
    const offline = await connect(urlFor(broker), { clientId: 'app', clean: false })
    await offline.subscribeAsync('q/out', { qos: 1 })
    await offline.endAsync()
    const pub = await connect(urlFor(broker))
    const queued = routed(broker, 'q/out')
    await pub.publishAsync('q/in', 'while you were away', { qos: 0 })
    await until(() => rule(broker, 'q').outputs === 1, 'the output')
    await queued // routed, so queued for the offline session
    const back = await connect(urlFor(broker), { clientId: 'app', clean: false })
    expect((await inbox(back).waitFor(1))[0]).toMatchObject({ topic: 'q/out', qos: 1, payload: 'while you were away' })
  })
})

describe('chains and cycles', () => {
  test('a rule\'s output feeds the next rule', async () => {
    const { broker } = await startWithRules({
      'normalize.js': `export const topics = ['raw/+']; export function convert (m) { return { topic: 'telemetry/' + m.topic.split('/')[1], payload: { t: Number(m.payload) } } }`,
      'alert.js': `export const topics = ['telemetry/+']; export function convert (m) { const t = JSON.parse(m.payload).t; return t > 30 ? { topic: 'alerts/' + m.topic.split('/')[1], payload: 'too hot: ' + t } : null }`
    })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('alerts/#')
    const dev = await connect(urlFor(broker))
    await dev.publishAsync('raw/d1', '21')
    await dev.publishAsync('raw/d2', '35')
    expect((await inbox(app).waitFor(1))[0]).toMatchObject({ topic: 'alerts/d2', payload: 'too hot: 35' })
    expect(rule(broker, 'alert')).toMatchObject({ matched: 2, outputs: 1, dropped: 1 })
  })

  test('a cycle between two rules ends at once, and self-loops never start', async () => {
    const { broker } = await startWithRules({
      'ping.js': `export const topics = ['loop/ping']; export function convert () { return { topic: 'loop/pong', payload: 'x' } }`,
      'pong.js': `export const topics = ['loop/pong']; export function convert () { return { topic: 'loop/ping', payload: 'x' } }`,
      'self.js': `export const topics = ['self/#']; export function convert () { return { topic: 'self/again', payload: 'x' } }`
    })
    const pub = await connect(urlFor(broker))
    await pub.publishAsync('loop/ping', 'start')
    await pub.publishAsync('self/start', 'start')
    const cut = (n: number) => until(() => rule(broker, 'ping').loopDropped === n && rule(broker, 'self').loopDropped === n, 'the loops to be cut')
    const expectRounds = (n: number) => {
      expect(rule(broker, 'ping')).toMatchObject({ matched: n, outputs: n, loopDropped: n })
      expect(rule(broker, 'pong')).toMatchObject({ matched: n, outputs: n, loopDropped: 0 })
      expect(rule(broker, 'self')).toMatchObject({ matched: n, outputs: n, loopDropped: n })
    }
    await cut(1)
    expectRounds(1)
    // Barrier: a second round through the same rules. Each rule takes its
    // inputs in order, so anything the first round still had going would be
    // counted before the second round is cut: the counts would be over 2.
    await pub.publishAsync('loop/ping', 'start')
    await pub.publishAsync('self/start', 'start')
    await cut(2)
    expectRounds(2)
  })

  test('a chain stops at rules.maxHops', async () => {
    const step = (from: number) => `export const topics = ['hop/${from}']; export function convert () { return { topic: 'hop/${from + 1}', payload: 'x' } }`
    const { broker } = await startWithRules(
      Object.fromEntries([0, 1, 2, 3, 4].map(i => [`step${i}.js`, step(i)])),
      { config: { rules: { maxHops: 2 } } })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('hop/#')
    await app.publishAsync('hop/0', 'x')
    // hop/0 from the client; step0 -> hop/1 (chain 1); step1 -> hop/2 (chain 2); step2 sees a full chain
    expect((await inbox(app).waitFor(3)).map(m => m.topic)).toEqual(['hop/0', 'hop/1', 'hop/2'])
    await until(() => rule(broker, 'step2').loopDropped === 1, 'the chain to stop')
    expect(rule(broker, 'step2').matched).toBe(0)
  })
})
