// broker.publish() checks its input as a client's PUBLISH is checked, and
// sends a plain object or array as JSON.
import { createBroker, SwitchyardError } from 'switchyard-mqtt'

const broker = await createBroker({
  listeners: [{ type: 'tcp', port: 0 }],
  persistence: { type: 'memory' },
  rules: { dir: null },
  log: { level: 'silent' }
})
broker.subscribe('#', m => console.log(`published ${m.topic} ${m.payload}`))

for (const message of [
  { topic: 'alerts/#', payload: 'x' }, // a filter, not a topic
  { topic: 'alerts/a', payload: 'x', qos: 5 },
  { topic: 'alerts/a', payload: 42 } // not bytes, text, object or array
]) {
  try {
    await broker.publish(message)
  } catch (err) {
    if (!(err instanceof SwitchyardError)) throw err
    console.log(`${err.code}: ${err.message}`)
  }
}
await broker.publish({ topic: 'alerts/a', payload: { level: 'high', at: [9, 30] } })
await broker.close()
