// broker.on(event, listener) returns the function that removes the listener.
import { createBroker } from 'switchyard-mqtt'
import mqtt from 'mqtt'

const broker = await createBroker({
  listeners: [{ type: 'tcp', port: 0 }],
  persistence: { type: 'memory' },
  rules: { dir: null },
  log: { level: 'silent' }
})

broker.on('clientConnect', client => console.log(`connect ${client.clientId}`))
broker.on('subscribe', (client, subscriptions) => console.log(`subscribe ${client.clientId} ${subscriptions.map(s => s.filter)}`))
// 'publish' sees every message, the broker's own $SYS/ statistics too (origin 'broker').
const published = new Promise(resolve => {
  const off = broker.on('publish', message => {
    if (message.origin.kind === 'broker') return
    console.log(`publish ${message.topic} by ${message.origin.kind} ${message.origin.clientId}`)
    off()
    resolve()
  })
})
broker.on('unsubscribe', (client, filters) => console.log(`unsubscribe ${client.clientId} ${filters}`))
const gone = new Promise(resolve => broker.on('clientDisconnect', client => resolve(console.log(`disconnect ${client.clientId} (${client.reason})`))))

const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.listeners[0].port}`, { clientId: 'thermo-1' })
await client.subscribeAsync('rooms/#')
await client.publishAsync('rooms/kitchen', '21.5', { qos: 1 })
await published
await client.unsubscribeAsync('rooms/#')
await client.endAsync()
await gone
await broker.close()
