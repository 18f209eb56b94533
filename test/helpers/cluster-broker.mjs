// A whole Switchyard cluster node (createBroker from dist/) in a process of
// its own, so that a test can kill -9 it. argv[2] is the config as JSON.
// Prints one JSON line: { event: 'ready', port, admin } or { event: 'error' }.
import { createBroker } from '../../dist/index.js'

const out = value => process.stdout.write(JSON.stringify(value) + '\n')
try {
  const broker = await createBroker(JSON.parse(process.argv[2]))
  out({ event: 'ready', port: broker.listeners[0].port, admin: broker.admin?.port })
  process.on('SIGTERM', () => { broker.close().then(() => process.exit(0)) })
} catch (err) {
  out({ event: 'error', code: err.code, message: err.message })
  process.exit(1)
}
