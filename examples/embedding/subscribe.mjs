// broker.subscribe(filter, handler): every message the broker routes, from
// clients, the application or rules, as one Message with its origin.
import { createBroker } from 'switchyard-mqtt'

const broker = await createBroker({
  listeners: [{ type: 'tcp', port: 0 }],
  persistence: { type: 'memory' },
  rules: { dir: null },
  log: { level: 'silent' }
})

const unsubscribe = broker.subscribe('sensors/#', message => {
  const { kind, clientId } = message.origin
  console.log(`${message.topic} ${message.payload} qos=${message.qos} from ${kind} ${clientId}`)
})

await broker.publish({ topic: 'sensors/t1', payload: '21.5', qos: 1 })
unsubscribe()
await broker.publish({ topic: 'sensors/t1', payload: '22.0' }) // not seen: unsubscribed
await broker.close()
