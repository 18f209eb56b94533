import { persistenceContract, type StoreKind } from '../contract/persistence.contract.js'
import { tempDir } from '../helpers/broker.js'

/** Every store kind Switchyard offers runs the one contract; a new kind is one more line. */
const kinds: StoreKind[] = [
  { name: 'memory', config: () => ({ type: 'memory' }), durable: false },
  { name: 'LevelDB', config: () => ({ type: 'level', path: tempDir('switchyard-persistence-') }), durable: true }
]

for (const kind of kinds) persistenceContract(kind)
