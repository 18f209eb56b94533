// A cluster node reduced to membership and wills, in a process of its own,
// so that a test can kill -9 it (or SIGSTOP it). Runs the built modules in
// dist/ (test/global-setup.ts builds them). argv[2] is JSON:
//   { url, nodeId, heartbeatMs, wills?: [{ clientId, will }], bulkWills?: n }
// Prints one JSON line per event: ready (with incarnation), evicted, error.
import { pino } from 'pino'
import { connectRedis } from '../../dist/cluster/redis.js'
import { join } from '../../dist/cluster/membership.js'
import { createWills } from '../../dist/cluster/wills.js'

const config = JSON.parse(process.argv[2])
const out = value => process.stdout.write(JSON.stringify(value) + '\n')
const logger = pino({ level: 'silent' })

try {
  const redis = await connectRedis(config.url, { heartbeatMs: config.heartbeatMs })
  const membership = await join({
    redis,
    nodeId: config.nodeId,
    address: `${config.nodeId}.test:1883`,
    heartbeatMs: config.heartbeatMs,
    stats: () => ({ clients: (config.wills?.length ?? 0) + (config.bulkWills ?? 0), messagesPerSecond: 12.5 }),
    logger
  })
  membership.on('evicted', err => out({ event: 'evicted', code: err.code }))
  const wills = createWills({ redis, membership, publish: async () => {}, logger })
  for (const { clientId, will } of config.wills ?? []) {
    await wills.connected(clientId, revive(will), { sessionExpiryInterval: will.sessionExpiryInterval })
  }
  for (let i = 0; i < (config.bulkWills ?? 0); i += 500) {
    const batch = []
    for (let j = i; j < Math.min(i + 500, config.bulkWills); j++) {
      batch.push(wills.connected(`bulk-${j}`, { topic: `bulk/${j}/status`, payload: Buffer.from('offline'), qos: 1, retain: false }))
    }
    await Promise.all(batch)
  }
  out({ event: 'ready', incarnation: membership.incarnation })
} catch (err) {
  out({ event: 'error', code: err.code, message: err.message })
  process.exit(1)
}

// Buffers cross the command line as { base64 }.
function revive (will) {
  const b = v => (v && typeof v === 'object' && typeof v.base64 === 'string') ? Buffer.from(v.base64, 'base64') : v
  const properties = will.properties ? Object.fromEntries(Object.entries(will.properties).map(([k, v]) => [k, b(v)])) : undefined
  return { ...will, payload: b(will.payload), ...(properties ? { properties } : {}) }
}
