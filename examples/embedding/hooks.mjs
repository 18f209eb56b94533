// Authentication and authorization from code. Hooks are an option, not
// config (functions cannot come from JSON). They run after the password file
// and the ACL, may be async, and a hook that throws denies.
import { createBroker } from 'switchyard-mqtt'
import mqtt from 'mqtt'

const tokens = new Map([['device-1', 's3cret']])

const broker = await createBroker({
  listeners: [{ type: 'tcp', port: 0 }],
  persistence: { type: 'memory' },
  rules: { dir: null },
  log: { level: 'silent' }
}, {
  hooks: {
    authenticate: async ({ username, password }) => tokens.get(username) === password?.toString(),
    authorizePublish: (client, message) => message.topic.startsWith(`devices/${client.clientId}/`),
    authorizeSubscribe: (client, { filter }) => !filter.startsWith('admin/')
  }
})
const url = `mqtt://127.0.0.1:${broker.listeners[0].port}`

try {
  await mqtt.connectAsync(url, { clientId: 'device-1', username: 'device-1', password: 'wrong', reconnectPeriod: 0 })
} catch (err) {
  console.log(`wrong token: refused, CONNACK ${err.code}`)
}
const device = await mqtt.connectAsync(url, { clientId: 'device-1', username: 'device-1', password: 's3cret' })
console.log('right token: connected')

const [admin] = await device.subscribeAsync('admin/#').catch(err => err.packet.granted.map(qos => ({ qos })))
console.log(`subscribe admin/#: granted ${admin.qos}`)

const routed = new Promise(resolve => broker.subscribe('devices/#', m => resolve(console.log(`routed ${m.topic}`))))
await device.publishAsync('devices/device-2/temp', '1', { qos: 1 }) // acknowledged, dropped
await device.publishAsync('devices/device-1/temp', '2', { qos: 1 })
await routed
console.log(`denied publishes: ${broker.stats().deniedPublishes}`)

await device.endAsync()
await broker.close()
