/*
 * Step 5 of a message's path: a rule's outputs are published through the
 * broker in the order of the rule's inputs. The bus brings each back to the
 * engine like any other message (chains).
 */
import type { Message } from '../message.js'

/** One rule's output queue: the last publish, and how many outputs wait on it. */
export interface Lane {
  tail: Promise<void>
  waiting: number
}

export function newLane (): Lane {
  return { tail: Promise.resolve(), waiting: 0 }
}

/**
 * Publishes `message` after every output queued before it on `lane`.
 * `publish` must not reject.
 *
 * A QoS 0, non-retained publish is dispatched by Aedes in call order, so it
 * goes at once; one that waits on storage (retain, QoS 1/2) could be
 * overtaken, so it and all that follow it wait for the one before. (Waiting
 * for every publish held a rule to one output per event-loop turn: ~30k/s.)
 */
export function publishInOrder (lane: Lane, message: Message, publish: (m: Message) => Promise<void>): void {
  if (lane.waiting === 0 && message.qos === 0 && !message.retain) {
    lane.tail = publish(message)
    return
  }
  lane.waiting++
  lane.tail = lane.tail
    .then(() => publish(message))
    .finally(() => { lane.waiting-- })
}
