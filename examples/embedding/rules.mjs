// Rules from code: the same sandbox, limits and status as rule files.
import { createBroker } from 'switchyard-mqtt'

const broker = await createBroker({
  listeners: [{ type: 'tcp', port: 0 }],
  persistence: { type: 'memory' },
  rules: { dir: null },
  log: { level: 'silent' }
})

const rule = await broker.rules.add({
  name: 'celsius',
  source: `
    export const topics = ['sensors/+/fahrenheit']
    export function convert (msg) {
      const device = msg.topic.split('/')[1]
      return { topic: 'sensors/' + device + '/celsius', payload: { value: (Number(msg.payload) - 32) * 5 / 9 } }
    }`
})
console.log(`${rule.name}: ${rule.status}, topics ${rule.topics}`)

const converted = new Promise(resolve => {
  broker.subscribe('sensors/+/celsius', m => resolve(console.log(`${m.topic} ${m.payload} by rule ${m.origin.rule}`)))
})
await broker.publish({ topic: 'sensors/t1/fahrenheit', payload: '212' })
await converted

const broken = await broker.rules.add({ name: 'broken', source: 'export const topics = ["x"]' })
console.log(`${broken.name}: ${broken.status}, ${broken.error}`)

console.log(`removed: ${await broker.rules.remove('celsius')}`)
console.log(`rules: ${broker.rules().map(r => r.name)}`)
await broker.close()
