// rules: { dir: null } turns file rules off: no ./rules directory is created
// or watched. Rules can still be added from code.
import { existsSync } from 'node:fs'
import { createBroker } from 'switchyard-mqtt'

const broker = await createBroker({
  listeners: [{ type: 'tcp', port: 0 }],
  persistence: { type: 'memory' },
  rules: { dir: null },
  log: { level: 'silent' }
})
console.log(`rules.dir: ${broker.config.rules.dir}`)
console.log(`./rules exists: ${existsSync('rules')}`)
console.log(`rules: ${broker.rules().length}`)
await broker.close()
