import { rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { MqttClient } from 'mqtt'
import { describe, expect, test } from 'vitest'
import type { Broker } from '../../src/index.js'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { rule, startWithRules, until } from '../helpers/rules.js'

// A meter's reading becomes the difference from its previous one: the first reading has none.
const DELTA = `export const topics = ['meter/+', 'barrier']
export function convert (msg, ctx) {
  if (msg.topic === 'barrier') return { topic: 'delta/barrier', payload: msg.payload }
  const id = msg.topic.split('/')[1]
  const reading = Number(msg.payload)
  if (msg.payload === 'bad') { ctx.state.set(id, -1000); throw new Error('bad reading') }
  const last = ctx.state.get(id)
  ctx.state.set(id, reading)
  return last === undefined ? null : { topic: 'delta/' + id, payload: String(reading - last) }
}
`

/** Publishes each reading, then a barrier through the same rule; the deltas received meanwhile, in order. */
async function readings (client: MqttClient, id: string, values: Array<number | string>): Promise<string[]> {
  const box = inbox(client)
  const before = box.messages.length
  for (const v of values) await client.publishAsync(`meter/${id}`, String(v), { qos: 1 })
  const marker = `m-${Math.random()}`
  await client.publishAsync('barrier', marker, { qos: 1 })
  await until(() => box.messages.slice(before).some(m => m.payload === marker), 'the barrier', 5000)
  return box.messages.slice(before).filter(m => m.topic === `delta/${id}`).map(m => m.payload)
}

async function subscriber (broker: Broker): Promise<MqttClient> {
  const client = await connect(urlFor(broker))
  await client.subscribeAsync('delta/#', { qos: 1 })
  return client
}

describe('ctx.state: per-rule state', () => {
  test('a delta converter across messages, and across a broker restart (LevelDB)', async () => {
    const rules = tempDir()
    writeFileSync(path.join(rules, 'delta.js'), DELTA)
    const config = { persistence: { type: 'level' as const, path: path.join(tempDir(), 'data') }, rules: { dir: rules } }
    const first = await startBroker(config)
    const a = await subscriber(first)
    expect(await readings(a, 'm1', [10, 15, 22])).toEqual(['5', '7'])
    expect(await readings(a, 'm2', [100])).toEqual([])
    await a.endAsync()
    await first.close()

    const second = await startBroker(config)
    const b = await subscriber(second)
    expect(await readings(b, 'm1', [30])).toEqual(['8'])
    expect(await readings(b, 'm2', [90])).toEqual(['-10'])
  })

  test('the state outlives the isolate: with rules.isolateIdleMs 0 each message may find a new one, seeded with it', async () => {
    const { broker } = await startWithRules({ 'delta.js': DELTA }, { config: { rules: { isolateIdleMs: 0 } } })
    const client = await subscriber(broker)
    for (const [reading, delta] of [[10, []], [13, ['3']], [20, ['7']]] as const) expect(await readings(client, 'm1', [reading])).toEqual(delta)
  })

  test('a conversion that throws changes no state', async () => {
    const { broker } = await startWithRules({ 'delta.js': DELTA })
    const client = await subscriber(broker)
    expect(await readings(client, 'm1', [10, 'bad', 12])).toEqual(['2'])
    expect(rule(broker, 'delta').failed).toBe(1)
  })

  test('the state survives a rule host crash, and a reload; a deleted rule\'s state goes with it', async () => {
    const { broker, dir } = await startWithRules({ 'delta.js': DELTA })
    const client = await subscriber(broker)
    expect(await readings(client, 'm1', [10, 11])).toEqual(['1'])

    const pid = broker.stats().rulesHostPid!
    process.kill(pid, 'SIGKILL')
    await until(() => broker.stats().rulesHostPid !== undefined && broker.stats().rulesHostPid !== pid, 'a new rule host', 10_000)
    expect(await readings(client, 'm1', [15])).toEqual(['4'])

    // a reload keeps it: the new version goes on from the last reading
    const loadedAt = rule(broker, 'delta').loadedAt
    writeFileSync(path.join(dir, 'delta.js'), DELTA.replace("String(reading - last)", "'v2:' + (reading - last)"))
    await until(() => rule(broker, 'delta').loadedAt !== loadedAt, 'the reload', 3000)
    expect(await readings(client, 'm1', [20])).toEqual(['v2:5'])

    rmSync(path.join(dir, 'delta.js'))
    await until(() => broker.rules().length === 0, 'the removal', 3000)
    writeFileSync(path.join(dir, 'delta.js'), DELTA)
    await until(() => broker.rules().some(r => r.name === 'delta' && r.status === 'running'), 'the rule again', 3000)
    expect(await readings(client, 'm1', [25, 26])).toEqual(['1'])
  })

  test('beyond its limits a set() fails the conversion with a clear error, counted; the broker and the rule go on', async () => {
    const { broker } = await startWithRules({
      'keys.js': `export const topics = ['k/+']
export function convert (msg, ctx) {
  if (msg.topic === 'k/big') { ctx.state.set('big', 'x'.repeat(70000)); return null }
  ctx.state.set(msg.payload, 1)
  return { topic: 'keys/count', payload: String(ctx.state.keys().length) }
}`
    })
    const client = await connect(urlFor(broker))
    await client.subscribeAsync('keys/count', { qos: 1 })
    await client.publishAsync('k/big', '', { qos: 1 })
    for (let i = 1; i <= 101; i++) await client.publishAsync('k/a', `key-${i}`, { qos: 1 })
    await client.publishAsync('k/a', 'key-1', { qos: 1 }) // an existing key: still fine
    const counts = await inbox(client).waitFor(101)
    expect(counts.at(99)!.payload).toBe('100')
    expect(counts.at(100)!.payload).toBe('100') // key-101 was not kept
    await until(() => rule(broker, 'keys').failed === 2, 'two failures', 3000)
    const errors = rule(broker, 'keys').lastErrors.map(e => e.error)
    expect(errors[0]).toMatch(/^RangeError: ctx\.state: at most 65536 characters per rule \(keys and values as JSON\); setting "big" would make 70005/)
    expect(errors[1]).toMatch(/^RangeError: ctx\.state: at most 100 keys per rule; setting "key-101" would make 101 \(delete the keys no longer needed\)/)
    expect(rule(broker, 'keys')).toMatchObject({ status: 'running', outputs: 101 })
  })

  test('switchyard rule test --all: cases share the rule\'s state, in order', async () => {
    const { RuleTester } = await import('../../src/rules/tester.js')
    const dir = tempDir()
    writeFileSync(path.join(dir, 'delta.js'), DELTA)
    writeFileSync(path.join(dir, 'delta.test.json'), JSON.stringify({
      cases: [
        { name: 'first reading: nothing', input: { topic: 'meter/x', payload: '10' }, expect: [] },
        { name: 'second reading: the delta', input: { topic: 'meter/x', payload: '13' }, expect: [{ topic: 'delta/x', payload: 3 }] }
      ]
    }))
    const tester = new RuleTester({ timeoutMs: 1000, memoryLimitMb: 32 }, 268435455)
    try {
      expect((await tester.runFixtures(dir)).map(r => [r.name, r.passed])).toEqual([['first reading: nothing', true], ['second reading: the delta', true]])
    } finally {
      await tester.close()
    }
  })
})

describe('ctx.state in a cluster: a node\'s own, in Redis', () => {
  const redis = useRedis()

  test('survives the node\'s restart; another node has its own', async () => {
    const node = async (nodeId: string) => {
      const broker = await startNode(redis.url, nodeId)
      await broker.rules.add({ name: 'delta', source: DELTA })
      return broker
    }
    const a1 = await node('node-a')
    const c1 = await subscriber(a1)
    expect(await readings(c1, 'm1', [10, 15])).toEqual(['5'])
    await c1.endAsync()
    await a1.close()

    const a2 = await node('node-a')
    expect(await readings(await subscriber(a2), 'm1', [22])).toEqual(['7'])
    const b = await node('node-b')
    expect(await readings(await subscriber(b), 'm1', [40])).toEqual([])
    expect(await redis.server.admin.hgetall('switchyard:cluster:rule-state:node-a:delta')).toEqual({ m1: '22' })
  })
})
