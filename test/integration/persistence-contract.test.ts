import { openCluster } from '../../src/cluster/context.js'
import { parseConfig } from '../../src/config.js'
import { persistenceContract, type StoreKind } from '../contract/persistence.contract.js'
import { tempDir } from '../helpers/broker.js'
import { pino } from 'pino'
import { useRedis } from '../helpers/redis.js'

const redis = useRedis()

/** Every store kind Switchyard offers runs the one contract; a new kind is one more line. */
const kinds: StoreKind[] = [
  { name: 'memory', config: () => ({ type: 'memory' }), durable: false },
  { name: 'LevelDB', config: () => ({ type: 'level', path: tempDir('switchyard-persistence-') }), durable: true },
  // A cluster node's store: MQTT 5 session expiry stays in each node's memory (docs/cluster.md).
  {
    name: 'Redis',
    config: () => ({ type: 'redis' }),
    wills: false,
    durable: true,
    sessionExpiry: false,
    cluster: async () => openCluster(parseConfig({ cluster: { redis: redis.url, nodeId: 'contract' } }).cluster!, { logger: pino({ level: 'silent' }) })
  }
]

for (const kind of kinds) persistenceContract(kind)
