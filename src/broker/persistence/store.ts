/*
 * The Aedes persistence interface, as Aedes 1.2 calls it (promise forms;
 * aedes-persistence's callback forms are never used), and the one place that
 * delegates to a store. Each layer in this folder takes a store of this shape
 * and returns one, overriding only what it changes; persistence.ts stacks them.
 */
import type { Readable } from 'node:stream'

export interface RetainedPacket { topic: string, payload: Buffer }
export interface ClientRef { id: string }
export interface Sub { clientId: string }
export interface QueuedPacket { messageId?: number, brokerId?: string, cmd?: string }
/**
 * An MQTT 5 session's expiry, kept for the next run (vendor/aedes/aedes.js,
 * restoreSessions): its Session Expiry Interval in seconds and, once its
 * connection closed, when (ms since the epoch).
 */
export interface SessionExpiryRecord { interval: number, disconnectedAt?: number }

export interface AedesPersistence {
  /** Aedes rejects a store whose setup() is not an AsyncFunction. */
  setup(broker: { id: string }): Promise<unknown>
  storeRetained(packet: RetainedPacket): Promise<unknown>
  createRetainedStream(pattern: string): Readable
  createRetainedStreamCombi(patterns: string[]): Readable
  addSubscriptions(client: ClientRef, subs: unknown[]): Promise<unknown>
  removeSubscriptions(client: ClientRef, topics: string[]): Promise<unknown>
  subscriptionsByClient(client: ClientRef): Promise<unknown>
  countOffline(): Promise<{ clientsCount: number, subsCount: number }>
  subscriptionsByTopic(topic: string): Promise<unknown>
  cleanSubscriptions(client: ClientRef): Promise<unknown>
  outgoingEnqueue(sub: Sub, packet: unknown): Promise<unknown>
  outgoingEnqueueCombi(subs: Sub[], packet: unknown): Promise<unknown>
  outgoingUpdate(client: ClientRef, packet: unknown): Promise<unknown>
  outgoingClearMessageId(client: ClientRef, packet: QueuedPacket): Promise<unknown>
  outgoingStream(client: ClientRef): Readable
  incomingStorePacket(client: ClientRef, packet: unknown): Promise<unknown>
  incomingGetPacket(client: ClientRef, packet: unknown): Promise<unknown>
  incomingDelPacket(client: ClientRef, packet: unknown): Promise<unknown>
  /** Optional: Aedes feature-detects it, so a layer must not add it to a store without it. */
  cleanIncoming?(client: ClientRef): Promise<unknown>
  putWill(client: ClientRef, packet: unknown): Promise<unknown>
  getWill(client: ClientRef): Promise<unknown>
  delWill(client: ClientRef): Promise<unknown>
  streamWill(brokers?: unknown): Readable
  getClientList(topic: string): Readable
  destroy(): Promise<unknown>
  /**
   * Optional, feature-detected by Aedes (vendor/aedes/aedes.js): MQTT 5
   * session expiry and will delay across a restart. Only a durable store
   * has them (level-store.ts).
   */
  putSessionExpiry?(clientId: string, record: SessionExpiryRecord): Promise<unknown>
  delSessionExpiry?(clientId: string): Promise<unknown>
  /** Each record with its client id. */
  streamSessionExpiry?(): Readable
}

/**
 * A plain object that forwards every method to `store`, looked up at each
 * call. The stores are classes with private (#) fields, so their methods
 * must run with the store as `this`; layers then spread this object and
 * replace what they change.
 */
export function forward (store: AedesPersistence): AedesPersistence {
  const s = store
  const forwarded: AedesPersistence = {
    setup: async broker => await s.setup(broker),
    storeRetained: packet => s.storeRetained(packet),
    createRetainedStream: pattern => s.createRetainedStream(pattern),
    createRetainedStreamCombi: patterns => s.createRetainedStreamCombi(patterns),
    addSubscriptions: (client, subs) => s.addSubscriptions(client, subs),
    removeSubscriptions: (client, topics) => s.removeSubscriptions(client, topics),
    subscriptionsByClient: client => s.subscriptionsByClient(client),
    countOffline: () => s.countOffline(),
    subscriptionsByTopic: topic => s.subscriptionsByTopic(topic),
    cleanSubscriptions: client => s.cleanSubscriptions(client),
    outgoingEnqueue: (sub, packet) => s.outgoingEnqueue(sub, packet),
    outgoingEnqueueCombi: (subs, packet) => s.outgoingEnqueueCombi(subs, packet),
    outgoingUpdate: (client, packet) => s.outgoingUpdate(client, packet),
    outgoingClearMessageId: (client, packet) => s.outgoingClearMessageId(client, packet),
    outgoingStream: client => s.outgoingStream(client),
    incomingStorePacket: (client, packet) => s.incomingStorePacket(client, packet),
    incomingGetPacket: (client, packet) => s.incomingGetPacket(client, packet),
    incomingDelPacket: (client, packet) => s.incomingDelPacket(client, packet),
    putWill: (client, packet) => s.putWill(client, packet),
    getWill: client => s.getWill(client),
    delWill: client => s.delWill(client),
    streamWill: brokers => s.streamWill(brokers),
    getClientList: topic => s.getClientList(topic),
    destroy: () => s.destroy()
  }
  if (typeof s.cleanIncoming === 'function') forwarded.cleanIncoming = client => s.cleanIncoming!(client)
  if (typeof s.putSessionExpiry === 'function') forwarded.putSessionExpiry = (clientId, record) => s.putSessionExpiry!(clientId, record)
  if (typeof s.delSessionExpiry === 'function') forwarded.delSessionExpiry = clientId => s.delSessionExpiry!(clientId)
  if (typeof s.streamSessionExpiry === 'function') forwarded.streamSessionExpiry = () => s.streamSessionExpiry!()
  return forwarded
}
