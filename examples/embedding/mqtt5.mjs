// MQTT 5 properties: on every Message (broker.subscribe(), a rule's
// msg.properties), and in broker.publish() and rule outputs. A rule answers a
// request natively: to its responseTopic, with its correlationData.
import { createBroker } from 'switchyard-mqtt'
import mqtt from 'mqtt'

const broker = await createBroker({
  listeners: [{ type: 'tcp', port: 0 }],
  persistence: { type: 'memory' },
  rules: { dir: null },
  log: { level: 'silent' }
})
await broker.rules.add({
  name: 'thermostat',
  source: `
    export const topics = ['thermostat/get']
    export function convert (msg) {
      const { responseTopic, correlationData } = msg.properties // {} from an MQTT 3.1.1 client
      if (responseTopic === undefined) return null // nobody to answer
      return { topic: responseTopic, payload: { setpoint: 21 }, properties: { correlationData, contentType: 'application/json' } }
    }`
})
broker.subscribe('thermostat/#', m => console.log(`routed ${m.topic}, response topic ${m.properties?.responseTopic}`))

const app = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.listeners[0].port}`, { protocolVersion: 5 })
await app.subscribeAsync('app/replies')
const reply = new Promise(resolve => app.once('message', (topic, payload, packet) => resolve({ topic, payload, packet })))
await app.publishAsync('thermostat/get', '', { qos: 1, properties: { responseTopic: 'app/replies', correlationData: Buffer.from('req-1') } })
const { topic, payload, packet } = await reply
console.log(`reply on ${topic}: ${payload}, correlation data ${packet.properties.correlationData}, ${packet.properties.contentType}`)

try {
  await broker.publish({ topic: 'thermostat/get', payload: '', properties: { responseTopic: 'app/#' } })
} catch (err) {
  console.log(`${err.code}: ${err.message}`)
}
await app.endAsync()
await broker.close()
