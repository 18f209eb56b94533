import { renameSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import type { MqttClient } from 'mqtt'
import { describe, expect, test } from 'vitest'
import type { Broker } from '../../src/index.js'
import { urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { rule, startWithRules, until } from '../helpers/rules.js'

/** A rule on `in` and `barrier` that multiplies the number it gets by `factor`, onto `out`. */
const times = (factor: number, extra = '') => `export const topics = ['in', 'barrier']
export function convert (msg) {
  if (msg.topic === 'barrier') return { topic: 'out/barrier', payload: msg.payload }
  ${extra}
  return { topic: 'out', payload: String(Number(msg.payload) * ${factor}) }
}
`

/** Publishes `payloads` on `in` and a barrier, waits until the barrier came through and the shadow compared them all; what `out` received meanwhile. */
async function send (broker: Broker, client: MqttClient, payloads: string[]): Promise<string[]> {
  const box = inbox(client)
  const before = box.messages.length
  const compared = rule(broker, 'live').shadow?.compared ?? 0
  for (const p of payloads) await client.publishAsync('in', p, { qos: 1 })
  await until(() => (rule(broker, 'live').shadow?.compared ?? 0) >= compared + payloads.length, 'the comparisons', 5000)
  const marker = `m-${Math.random()}`
  await client.publishAsync('barrier', marker, { qos: 1 })
  await until(() => box.messages.slice(before).some(m => m.payload === marker), 'the barrier', 5000)
  // the barrier goes through both versions too: once compared, every count is settled
  await until(() => (rule(broker, 'live').shadow?.compared ?? 0) >= compared + payloads.length + 1, 'the barrier\'s comparison', 5000)
  return box.messages.slice(before).filter(m => m.topic === 'out').map(m => m.payload)
}

async function client (broker: Broker): Promise<MqttClient> {
  const c = await connect(urlFor(broker))
  await c.subscribeAsync('out/#', { qos: 1 })
  return c
}

describe('shadow versions: rules/<name>.next.js', () => {
  test('gets the live rule\'s messages; its outputs are compared, never published; differences are counted and shown', async () => {
    // the next version agrees on 0 and 1, and differs on 3
    const { broker } = await startWithRules({ 'live.js': times(2), 'live.next.js': times(2, "if (msg.payload === '3') return { topic: 'out', payload: 'nine', qos: 1 }") })
    await until(() => rule(broker, 'live').shadow?.status === 'running', 'the shadow', 3000)
    expect(broker.rules().map(r => r.name)).toEqual(['live']) // one rule; the shadow is part of it
    const c = await client(broker)
    expect(await send(broker, c, ['0', '3', '1'])).toEqual(['0', '6', '2'])
    const { shadow } = rule(broker, 'live')
    // compared: the three, and the barrier (the shadow gets every message the live rule converts)
    expect(shadow).toMatchObject({ file: expect.stringMatching(/live\.next\.js$/), status: 'running', error: null, compared: 4, differing: 1, skipped: 0 })
    expect(shadow!.lastDiffs).toEqual([{
      at: expect.any(String),
      topic: 'in',
      payload: '3',
      live: [{ topic: 'out', payload: '6', qos: 1, retain: false }],
      next: [{ topic: 'out', payload: 'nine', qos: 1, retain: false }]
    }])
  })

  test('a next version that throws where the live one converts differs, with its error; one that fails to load is reported', async () => {
    const { broker, dir } = await startWithRules({ 'live.js': times(2), 'live.next.js': times(2, "if (msg.payload === '5') throw new RangeError('too big')") })
    await until(() => rule(broker, 'live').shadow?.status === 'running', 'the shadow', 3000)
    const c = await client(broker)
    expect(await send(broker, c, ['5'])).toEqual(['10'])
    expect(rule(broker, 'live').shadow).toMatchObject({ compared: 2, differing: 1, lastDiffs: [{ live: [{ payload: '10' }], next: { error: 'RangeError: too big' } }] })

    writeFileSync(path.join(dir, 'live.next.js'), 'export const topics = [;')
    await until(() => rule(broker, 'live').shadow?.status === 'failed', 'the broken shadow', 3000)
    expect(rule(broker, 'live').shadow!.error).toMatch(/SyntaxError/)
    expect(rule(broker, 'live')).toMatchObject({ status: 'running', error: null }) // the live version is not touched
  })

  test('promoted by renaming: the next version becomes the live one, and the shadow is gone', async () => {
    const { broker, dir } = await startWithRules({ 'live.js': times(2), 'live.next.js': times(3) })
    await until(() => rule(broker, 'live').shadow?.status === 'running', 'the shadow', 3000)
    const c = await client(broker)
    expect(await send(broker, c, ['1'])).toEqual(['2'])
    expect(rule(broker, 'live').shadow).toMatchObject({ compared: 2, differing: 1 })

    const loadedAt = rule(broker, 'live').loadedAt
    renameSync(path.join(dir, 'live.next.js'), path.join(dir, 'live.js'))
    await until(() => rule(broker, 'live').shadow === undefined && rule(broker, 'live').loadedAt !== loadedAt, 'the promotion', 3000)
    await c.publishAsync('in', '1', { qos: 1 })
    expect((await inbox(c).waitFor(3)).at(-1)).toMatchObject({ topic: 'out', payload: '3' }) // after '2' and the barrier
    expect(broker.rules().map(r => r.name)).toEqual(['live'])
  })

  test('a shadow\'s ctx.state starts as the live rule\'s, and never changes it', async () => {
    const delta = (scale: number) => `export const topics = ['in', 'barrier']
export function convert (msg, ctx) {
  if (msg.topic === 'barrier') return { topic: 'out/barrier', payload: msg.payload }
  const last = ctx.state.get('last')
  ctx.state.set('last', Number(msg.payload) * ${scale})
  return last === undefined ? null : { topic: 'out', payload: String(Number(msg.payload) - last) }
}
`
    const { broker, dir } = await startWithRules({ 'live.js': delta(1) })
    const c = await connect(urlFor(broker))
    await c.subscribeAsync('out/#', { qos: 1 })
    await c.publishAsync('in', '10', { qos: 1 })
    await c.publishAsync('in', '12', { qos: 1 })
    expect((await inbox(c).waitFor(1))[0]!.payload).toBe('2')

    // the shadow stores 1000× the reading: were it the live rule's state, the live deltas would be wrong
    writeFileSync(path.join(dir, 'live.next.js'), delta(1000))
    await until(() => rule(broker, 'live').shadow?.status === 'running', 'the shadow', 3000)
    expect(await send(broker, c, ['15', '20'])).toEqual(['3', '5'])
    // its first delta came from the live state (15 - 12); its second from its own (20 - 15000)
    expect(rule(broker, 'live').shadow).toMatchObject({ compared: 3, differing: 1, lastDiffs: [{ payload: '20', live: [{ payload: '5' }], next: [{ payload: '-14980' }] }] })

    rmSync(path.join(dir, 'live.next.js'))
    await until(() => rule(broker, 'live').shadow === undefined, 'the shadow removed', 3000)
  })
})
