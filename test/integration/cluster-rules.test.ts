/*
 * Issue 13: each message runs through the rules once, on the node that
 * accepted it, never on every node; the outputs reach subscribers on every
 * node. A message from another node reaches this node through the emitter
 * only, never through Aedes's `published` hook, which is the one tap to the
 * bus (src/broker/tap.ts), so the rules never see it here.
 */
import { describe, expect, test } from 'vitest'
import type { Broker } from '../../src/index.js'
import { barrier } from '../helpers/barrier.js'
import { urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { rule } from '../helpers/rules.js'

const redis = useRedis()

// The payload goes through unchanged, so a barrier's marker can ride it.
const FORWARD = `
export const topics = ['in/#']
export function convert (msg) {
  return { topic: 'out/' + msg.topic.slice(3), payload: msg.payload, qos: 1 }
}
`

async function nodeWithRule (nodeId: string): Promise<Broker> {
  const node = await startNode(redis.url, nodeId)
  await node.rules.add({ name: 'forward', source: FORWARD })
  return node
}

describe('cluster: rules', () => {
  test('a rule loaded on both nodes converts each message once, on the node that accepted it; its output reaches both nodes', async () => {
    const a = await nodeWithRule('node-a')
    const b = await nodeWithRule('node-b')
    const subA = await connect(urlFor(a), { clientId: 'out-a' })
    const subB = await connect(urlFor(b), { clientId: 'out-b' })
    await subA.subscribeAsync('out/#', { qos: 1 })
    await subB.subscribeAsync('out/#', { qos: 1 })
    const devA = await connect(urlFor(a), { clientId: 'dev-a' })
    const devB = await connect(urlFor(b), { clientId: 'dev-b' })
    for (let i = 0; i < 20; i++) await devA.publishAsync('in/a', `pa${i}`, { qos: 1 })
    for (let i = 0; i < 5; i++) await devB.publishAsync('in/b', `pb${i}`, { qos: 1 })

    for (const sub of [subA, subB]) {
      await inbox(sub).waitFor(25)
      // nothing beyond: the markers, converted by the rule on A, come after
      const got = (await barrier(devA, sub, 'in/barrier', { arrivesOn: 'out/barrier' })).map(m => m.payload)
      expect(got.filter(p => p.startsWith('pa'))).toEqual(Array.from({ length: 20 }, (_, i) => `pa${i}`))
      expect(got.filter(p => p.startsWith('pb'))).toEqual(Array.from({ length: 5 }, (_, i) => `pb${i}`))
      // (the second subscriber also got the first one's marker)
      expect(got.filter(p => !p.startsWith('barrier'))).toHaveLength(25)
    }
    // each node's rule saw only what its own clients published (and the two markers A accepted)
    expect(rule(a, 'forward').matched).toBe(22)
    expect(rule(b, 'forward').matched).toBe(5)
  })

  test('broker.subscribe() sees what this node routed: the messages it accepted and the outputs of its rules', async () => {
    const a = await nodeWithRule('node-a')
    const b = await startNode(redis.url, 'node-b')
    const seenOnB: string[] = []
    b.subscribe('#', m => { seenOnB.push(m.topic) })
    const seenOnA: string[] = []
    a.subscribe('#', m => { seenOnA.push(m.topic) })
    const sub = await connect(urlFor(b), { clientId: 'bus-sub' })
    await sub.subscribeAsync(['out/#', 'b/barrier'])
    const dev = await connect(urlFor(a), { clientId: 'bus-dev' })
    await dev.publishAsync('in/x', 'one', { qos: 1 })
    await inbox(sub).waitFor(1)
    const devB = await connect(urlFor(b), { clientId: 'bus-dev-b' })
    await barrier(devB, sub, 'b/barrier')
    expect(seenOnA).toEqual(['in/x', 'out/x'])
    expect(seenOnB).toEqual(['b/barrier'])
  })
})
