/*
 * Issue 15: the admin API's operations, over real HTTP against a real
 * broker, seen by real MQTT.js clients.
 */
import { describe, expect, it } from 'vitest'
import { urlFor } from '../helpers/broker.js'
import { retainedBarrier, routed } from '../helpers/barrier.js'
import { connect, inbox } from '../helpers/client.js'
import { until } from '../helpers/wait.js'
import { adminBroker, basic, request } from './admin-support.js'

const auth = { authorization: basic() }
const post = (p: string, body?: unknown) => ({ method: 'POST', headers: auth, body: body ?? {} })

describe('POST /api/publish', () => {
  it('reaches an MQTT subscriber, as the administrator, with the retain flag honoured', async () => {
    const broker = await adminBroker()
    const live = await connect(urlFor(broker))
    await live.subscribeAsync('plant/#', { qos: 1 })
    const seen = routed(broker, 'plant/#')
    const res = await request(broker, '/api/publish', post('', { topic: 'plant/line1/setpoint', payload: '21.5', qos: 1, retain: true }))
    expect(res.status).toBe(200)
    expect(res.json).toEqual({ ok: true })
    const [message] = await inbox(live).waitFor(1)
    expect(message).toMatchObject({ topic: 'plant/line1/setpoint', payload: '21.5', qos: 1 })
    expect((await seen)[0]!.origin).toMatchObject({ kind: 'api', username: 'ops' })
    // Retained: a subscriber that comes later gets it, flagged as retained [MQTT-3.3.1-8].
    const late = await connect(urlFor(broker))
    await late.subscribeAsync('plant/#', { qos: 1 })
    const [replayed] = await inbox(late).waitFor(1)
    expect(replayed).toMatchObject({ topic: 'plant/line1/setpoint', payload: '21.5', retain: true })
  })

  it('takes a binary payload as base64', async () => {
    const broker = await adminBroker()
    const seen = routed(broker, 'bin')
    await request(broker, '/api/publish', post('', { topic: 'bin', payload: Buffer.from([0, 255, 1]).toString('base64'), encoding: 'base64', qos: 0, retain: false }))
    expect([...(await seen)[0]!.payload]).toEqual([0, 255, 1])
  })

  it('answers 400 with the reason for what a client could not publish', async () => {
    const broker = await adminBroker()
    const cases: Array<[unknown, RegExp]> = [
      [{ topic: 'a/+', payload: 'x' }, /topic "a\/\+": the topic .*wildcard/],
      [{ topic: 'a', payload: 'x', qos: 3 }, /qos must be 0, 1 or 2/],
      [{ topic: 'a', payload: 42 }, /payload must be a string/],
      [{ topic: 'a', payload: '!!', encoding: 'base64' }, /not valid base64/],
      [{ topic: 'a', payload: 'x', retain: 'yes' }, /retain must be true or false/]
    ]
    for (const [body, message] of cases) {
      const res = await request(broker, '/api/publish', post('', body))
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.json.error).toMatch(message)
    }
    expect((await request(broker, '/api/publish', { ...post(''), body: '{nope' })).status).toBe(400)
  })
})

describe('retained messages', () => {
  it('lists them under a filter (not $SYS/ for #), and deletes one everywhere', async () => {
    const broker = await adminBroker()
    for (const [topic, payload] of [['a/1', 'one'], ['a/2', 'two'], ['b/1', 'other']] as const) await broker.publish({ topic, payload, qos: 1, retain: true })
    await broker.publish({ topic: 'a/bin', payload: Buffer.from([0xff, 0x00]), retain: true })
    const under = await request(broker, '/api/retained?filter=' + encodeURIComponent('a/#'), { headers: auth })
    expect(under.status).toBe(200)
    expect(under.json.truncated).toBe(false)
    expect([...under.json.messages].sort((x: { topic: string }, y: { topic: string }) => x.topic.localeCompare(y.topic))).toEqual([
      { topic: 'a/1', payload: 'one', encoding: 'utf8', qos: 1 },
      { topic: 'a/2', payload: 'two', encoding: 'utf8', qos: 1 },
      { topic: 'a/bin', payload: Buffer.from([0xff, 0x00]).toString('base64'), encoding: 'base64', qos: 0 }
    ])
    const all = await request(broker, '/api/retained?filter=%23', { headers: auth })
    expect(all.json.messages.map((m: { topic: string }) => m.topic).sort()).toEqual(['a/1', 'a/2', 'a/bin', 'b/1'])
    expect((await request(broker, '/api/retained?filter=a/%23/b', { headers: auth })).status).toBe(400)

    const deleted = await request(broker, '/api/retained/' + encodeURIComponent('a/1'), { method: 'DELETE', headers: { ...auth, 'content-type': 'application/json' } })
    expect(deleted.json).toEqual({ ok: true })
    const left = await request(broker, '/api/retained?filter=' + encodeURIComponent('a/#'), { headers: auth })
    expect(left.json.messages.map((m: { topic: string }) => m.topic).sort()).toEqual(['a/2', 'a/bin'])
    // A new subscriber is not replayed the deleted one.
    const sub = await connect(urlFor(broker))
    const replayed = await retainedBarrier(broker, sub, 'a/#', 'marker/a')
    expect(replayed.map(m => m.topic).sort()).toEqual(['a/2', 'a/bin'])
  })

  it('says when there are more than 1,000', async () => {
    const broker = await adminBroker()
    for (let i = 0; i < 1001; i++) await broker.publish({ topic: `many/${i}`, payload: 'x', retain: true })
    const res = await request(broker, '/api/retained?filter=' + encodeURIComponent('many/#'), { headers: auth })
    expect(res.json.messages).toHaveLength(1000)
    expect(res.json.truncated).toBe(true)
  })
})

describe('POST /api/clients/<id>/disconnect', () => {
  it('closes the client\'s connection, and answers 404 for a client that is not connected', async () => {
    const broker = await adminBroker()
    const victim = await connect(urlFor(broker), { clientId: 'line 7/plc' })
    const closed = new Promise<void>(resolve => victim.once('close', () => resolve()))
    const res = await request(broker, '/api/clients/' + encodeURIComponent('line 7/plc') + '/disconnect', post(''))
    expect(res.status).toBe(200)
    await closed
    await until(() => broker.clients().length === 0, 'the client to be gone')
    expect((await request(broker, '/api/clients/nobody/disconnect', post(''))).status).toBe(404)
  })

  it('tells an MQTT 5 client why: DISCONNECT 0x98, administrative action', async () => {
    const broker = await adminBroker()
    const victim = await connect(urlFor(broker), { clientId: 'v5', protocolVersion: 5 })
    const reason = new Promise<number | undefined>(resolve => victim.once('disconnect', packet => resolve(packet.reasonCode)))
    await request(broker, '/api/clients/v5/disconnect', post(''))
    expect(await reason).toBe(0x98)
  })
})

const CONVERTER = `export const topics = ['sensors/+/raw']
export function convert (msg) {
  const r = JSON.parse(msg.payload)
  return { topic: 'sensors/' + msg.topic.split('/')[1] + '/celsius', payload: { c: (r.f - 32) * 5 / 9 } }
}`

describe('rules', () => {
  it('tests a rule on a sample in the production sandbox, and shows a broken rule\'s error', async () => {
    const broker = await adminBroker()
    await broker.rules.add({ name: 'convert', source: CONVERTER })
    const ok = await request(broker, '/api/rules/convert/test', post('', { topic: 'sensors/s1/raw', payload: '{"f":212}' }))
    expect(ok.status).toBe(200)
    expect(ok.json).toEqual({ outputs: [{ topic: 'sensors/s1/celsius', payload: '{"c":100}', encoding: 'utf8', qos: 0, retain: false }] })
    // The sample is not JSON: the rule throws, and the error says why.
    const broken = await request(broker, '/api/rules/convert/test', post('', { topic: 'sensors/s1/raw', payload: 'not json' }))
    expect(broken.json).toEqual({ error: { kind: 'conversion', message: expect.stringMatching(/JSON/) } })
    const unmatched = await request(broker, '/api/rules/convert/test', post('', { topic: 'elsewhere', payload: '{}' }))
    expect(unmatched.json.error).toMatchObject({ kind: 'unmatched' })
    // A rule that does not load: its load error.
    await broker.rules.add({ name: 'syntax', source: 'export const topics = [\'x\']\nexport function convert ( {' })
    const load = await request(broker, '/api/rules/syntax/test', post('', { topic: 'x', payload: '' }))
    expect(load.json.error).toMatchObject({ kind: 'load', message: expect.stringMatching(/SyntaxError/) })
    expect((await request(broker, '/api/rules/nope/test', post('', { topic: 'x' }))).status).toBe(404)
  })

  it('shows a rule\'s source and its last errors, each with the input that caused it', async () => {
    const broker = await adminBroker()
    await broker.rules.add({ name: 'convert', source: CONVERTER })
    const pub = await connect(urlFor(broker), { clientId: 'gw-1' })
    await pub.publishAsync('sensors/s9/raw', 'garbage', { qos: 1 })
    await until(() => broker.rules().find(r => r.name === 'convert')!.failed === 1, 'the rule to fail once')
    const res = await request(broker, '/api/rules/convert', { headers: auth })
    expect(res.status).toBe(200)
    expect(res.json).toMatchObject({ name: 'convert', status: 'running', failed: 1, source: CONVERTER })
    expect(res.json.lastErrors).toEqual([{
      at: expect.any(String),
      topic: 'sensors/s9/raw',
      error: expect.stringMatching(/JSON/),
      input: { topic: 'sensors/s9/raw', payload: 'garbage', encoding: 'utf8', qos: 1, retain: false, clientId: 'gw-1', truncated: false }
    }])
    // $SYS/ carries the status, not the inputs.
    expect(broker.rules()[0]!.lastErrors[0]).not.toHaveProperty('input')
    expect((await request(broker, '/api/rules/nope', { headers: auth })).status).toBe(404)
  })
})

describe('GET /api/history', () => {
  it('answers samples of the last 10 minutes, every 5 s', async () => {
    const broker = await adminBroker()
    const res = await request(broker, '/api/history', { headers: auth })
    expect(res.status).toBe(200)
    expect(res.json.intervalMs).toBe(5000)
    expect(res.json.samples.length).toBeGreaterThanOrEqual(1)
    for (const s of res.json.samples) {
      expect(s).toEqual({ ts: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), messagesInPerSecond: expect.any(Number), messagesOutPerSecond: expect.any(Number), clients: expect.any(Number) })
    }
  })
})
