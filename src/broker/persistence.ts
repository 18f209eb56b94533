/*
 * Persistence is composed, not patched: the store opened by
 * persistence/open.ts, with Switchyard's layers stacked on it in one place.
 * Each layer (persistence/*.ts) takes the store below it and returns one of
 * the same shape, overriding only what it changes, and says why it exists.
 * Nothing else changes the store Aedes gets; test/contract/persistence.contract.ts
 * checks the stack over every store kind.
 */
import { skipCleanAcks } from './persistence/clean-acks.js'
import { dollarTopicsNotQueuedForWildcards } from './persistence/dollar-topics.js'
import type { OpenedStore, StoreHealth } from './persistence/open.js'
import { orderEnqueues, orderPerClient } from './persistence/order.js'
import { capOutgoingQueue } from './persistence/queue-cap.js'
import { countRetained } from './persistence/retained-count.js'
import { guardRetainedReplay } from './persistence/retained-replay.js'
import { forward, type AedesPersistence } from './persistence/store.js'
import { sysRetainedInMemory } from './persistence/sys-retained.js'

export { openPersistence, type OpenedStore, type SharedStore, type StoreHealth } from './persistence/open.js'
export type { AedesPersistence } from './persistence/store.js'
/** What the broker core is given: the wrapped store. */
export type Persistence = AedesPersistence

export interface PersistenceOptions {
  /** limits.maxQueuedMessages: per client, 0 for unlimited. */
  maxQueuedMessages: number
  /** A message was not queued for `clientId`: its queue is full. */
  onQueueDrop(clientId: string): void
}

export interface WrappedPersistence {
  /** What Aedes gets. */
  persistence: Persistence
  /** Retained messages outside $SYS/, kept exact. */
  retained: { readonly size: number }
  probe: StoreHealth['probe']
}

/**
 * The layers, from the store up. The order matters where two layers touch
 * the same method: the retained count sees $SYS/ only to skip it; the queue
 * cap's clear goes through the clean-ack shortcut (a clean session has no
 * stored queue to count) and its outgoingUpdate through the ordering.
 * A shared store (the cluster's Redis) counts queues and retained messages
 * itself, from what every node stored: counts kept in this process would
 * see only this node's (issue 13).
 */
export async function wrapPersistence (base: OpenedStore, options: PersistenceOptions): Promise<WrappedPersistence> {
  let p = forward(base.store)
  p = sysRetainedInMemory(p)
  let retained: { readonly size: number }
  if (base.shared) {
    retained = base.shared.retained
  } else {
    const counted = await countRetained(p)
    p = counted.persistence
    retained = counted.retained
  }
  p = guardRetainedReplay(p)
  p = skipCleanAcks(p)
  p = orderPerClient(p)
  if (base.shared) base.shared.capQueues(options.maxQueuedMessages, options.onQueueDrop)
  else p = capOutgoingQueue(p, options.maxQueuedMessages, options.onQueueDrop)
  // Above the cap: what must not be queued takes no slot.
  p = dollarTopicsNotQueuedForWildcards(p)
  // Above the cap and the filter: a message they settle at once waits its turn.
  p = orderEnqueues(p)
  return { persistence: p, retained, probe: base.probe }
}
