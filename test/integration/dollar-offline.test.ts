import { describe, expect, test } from 'vitest'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'

/**
 * [MQTT-4.7.2-1] a filter starting with a wildcard must not match a topic
 * starting with '$'. Aedes 1.2 applies it to live deliveries, and to offline
 * queues only for $SYS/: so a denied publish (diverted to a '$' topic, see
 * auth-hooks.ts) was queued for an offline persistent '#' subscriber and
 * handed to it, payload and all, when it came back.
 */
describe('topics starting with $ and offline queues', () => {
  for (const persistence of ['memory', 'level'] as const) {
    test(`a denied QoS 1 publish never reaches an offline persistent # subscriber (${persistence})`, async () => {
      const broker = await startBroker({ persistence: persistence === 'level' ? { type: 'level', path: tempDir() } : { type: 'memory' } })
      const url = urlFor(broker)
      const sub = await connect(url, { clientId: 'dollar-sub', clean: false })
      await sub.subscribeAsync('#', { qos: 1 })
      await sub.endAsync()

      const pub = await connect(url)
      // Clients may not publish into $SYS/: acknowledged and dropped.
      await pub.publishAsync('$SYS/forged', 'secret', { qos: 1 })
      await broker.publish({ topic: '$internal/x', payload: 'not for #', qos: 1 })
      // The barrier: queued after the others, so once it arrives they would have.
      await pub.publishAsync('plain/barrier', 'barrier', { qos: 1 })

      const back = await connect(url, { clientId: 'dollar-sub', clean: false })
      const box = inbox(back)
      let n = 1
      while (!(await box.waitFor(n)).some(m => m.topic === 'plain/barrier')) n++
      expect(box.messages.map(m => m.topic)).toEqual(['plain/barrier'])
    })
  }
})
