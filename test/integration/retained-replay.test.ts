import path from 'node:path'
import { expect, test } from 'vitest'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'

// issue 9: 20,000 retained messages on LevelDB took seconds to reach a new
// '#' subscriber (`npm run bench -- --only=retained` times it). Here, only
// that every one arrives, once, with retain set.
test.each([0, 1] as const)('20,000 retained messages on LevelDB all reach a new # subscriber (QoS %i)', async qos => {
  const broker = await startBroker({ persistence: { type: 'level', path: path.join(tempDir(), 'data') } })
  const n = 20_000
  for (let i = 0; i < n; i += 1000) {
    await Promise.all(Array.from({ length: 1000 }, (_, k) => broker.publish({ topic: `r/${i + k}`, payload: String(i + k), qos: 1, retain: true })))
  }
  const sub = await connect(urlFor(broker))
  await sub.subscribeAsync('#', { qos })
  const got = await inbox(sub).waitFor(n, 15_000)
  const retained = got.filter(m => m.topic.startsWith('r/'))
  expect(retained).toHaveLength(n)
  expect(new Set(retained.map(m => m.topic)).size).toBe(n)
  expect(retained.every(m => m.retain && m.payload === m.topic.slice(2))).toBe(true)
  // acknowledged, and the session is still in good order: a live message follows
  await sub.publishAsync('after', 'live', { qos: 1 })
  expect((await inbox(sub).waitFor(n + 1)).at(-1)).toMatchObject({ topic: 'after', payload: 'live', retain: false })
}, 40_000)
