// Bare Aedes, as its README shows it: the same Aedes and persistence
// versions as Switchyard, no noDelay, no limits, no rules.
// usage: node bench/aedes-server.js <port> <memory|level> [dataDir]
import net from 'node:net'
import { createRequire } from 'node:module'
import { Aedes } from '../vendor/aedes/aedes.js'

const [port, kind, dir] = [Number(process.argv[2]), process.argv[3] ?? 'memory', process.argv[4]]
const options = {}
if (kind === 'level') {
  const { Level } = await import('level')
  const LevelPersistence = createRequire(import.meta.url)('aedes-persistence-level/asyncPersistence.js')
  options.persistence = new LevelPersistence(new Level(dir, { valueEncoding: 'buffer' }))
}
const aedes = await Aedes.createBroker(options)
net.createServer(aedes.handle).listen(port, '127.0.0.1', () => console.log(`listening on ${port}`))
process.on('SIGTERM', () => aedes.close(() => process.exit(0)))
