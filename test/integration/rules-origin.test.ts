import { describe, expect, test } from 'vitest'
import type { Message } from '../../src/index.js'
import { urlFor } from '../helpers/broker.js'
import { connect } from '../helpers/client.js'
import { startWithRules, until } from '../helpers/rules.js'

// The engine keeps one output origin per rule while the same client feeds it
// (engine.ts #outputOrigin) and the tap one origin per connection (tap.ts):
// whoever publishes, each output must still name its own input's publisher.
const TAG = `export const topics = ['in/#']
export function convert (msg) {
  return { topic: 'out/' + msg.topic.split('/')[1], payload: msg.clientId + ' ' + msg.username }
}`

describe('a rule output\'s origin', () => {
  test('names the client whose message it converted, with publishers taking turns', async () => {
    const { broker } = await startWithRules({ 'tag.js': TAG })
    const seen: Message[] = []
    broker.subscribe('out/#', m => { seen.push(m) })
    const a = await connect(urlFor(broker), { clientId: 'pub-a', username: 'user-a' })
    const b = await connect(urlFor(broker), { clientId: 'pub-b', username: 'user-b' })
    const order = [a, b, b, a, b, a, a]
    for (const [i, client] of order.entries()) {
      await client.publishAsync(`in/${i}`, 'x')
      await until(() => seen.length === i + 1, `output ${i}`)
    }
    for (const [i, m] of seen.entries()) {
      const [clientId, username] = m.payload.toString().split(' ')
      expect(m.topic).toBe(`out/${i}`)
      expect(clientId).toBe(order[i]!.options.clientId)
      expect(m.origin).toEqual({ kind: 'rule', clientId, username, rule: 'tag', chain: ['tag'] })
    }
  })
})
