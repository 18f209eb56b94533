/*
 * Stall detection. A delivery to a client whose socket is full waits for
 * 'drain' while it holds one of mqemitter's 100 delivery slots: one frozen
 * subscriber on busy topics took them all and stalled every other client
 * until Aedes's drainTimeout (60 s) dropped it. See boundStalledDeliveries;
 * and a client that does not drain for DRAIN_TIMEOUT_MS is disconnected.
 */
import type { Duplex } from 'node:stream'
import type { Counters } from './counters.js'
import { wrapDeliveries, type Client, type Deliver } from './internals.js'

/** Aedes's drainTimeout: a client whose socket does not drain for this long is disconnected. */
export const DRAIN_TIMEOUT_MS = 10_000

// Stalled: no progress for a second with a real backlog waiting, or none at
// all for five. Time alone is not enough: a healthy client on a slow link,
// or busy for a moment, also goes a while without draining.
const STALLED_AFTER_MS = 1000
const STALLED_BACKLOG_BYTES = 256 * 1024
const STALLED_ANYWAY_MS = 5000
const STALL_CHECK_MS = 250

/**
 * Aedes finishes a publish only when every delivery of it has called back,
 * and a delivery to a full socket calls back on 'drain'. So one client that
 * stops reading held up the publishers of every topic it subscribes to, and
 * through them everyone else, until its drainTimeout. Here, a client with
 * deliveries in progress and no progress for STALLED_AFTER_MS with
 * STALLED_BACKLOG_BYTES waiting, or for STALLED_ANYWAY_MS, is stalled:
 * its pending deliveries are released at once (their bytes stay in its
 * socket buffer), and further deliveries to it are shed and counted until it
 * drains. A healthy client, even a slow or busy one, keeps draining and is
 * never stalled. A shed QoS 0 message is gone, as QoS 0 allows; a shed
 * QoS 1/2 message to a persistent session stays in its stored queue and is
 * delivered when the client is back; to a clean session it is dropped, as
 * Mosquitto drops beyond max_queued_messages. Installed before the client
 * can subscribe, since subscriptions capture these functions.
 */
export function boundStalledDeliveries (client: Client, stream: Duplex, counters: Counters): void {
  // Made on the first delivery: an idle connection never needs it (issue 16).
  let pending: Set<() => void> | undefined
  let lastProgress = Date.now()
  let stalled = false
  let timer: NodeJS.Timeout | undefined
  const progress = () => {
    lastProgress = Date.now()
    stalled = false
  }
  stream.on('drain', progress)
  // on, not once: 'close' comes once, and once() costs a wrapper per connection (issue 16)
  stream.on('close', () => clearTimeout(timer))
  const watch = () => {
    timer = undefined
    if (pending === undefined || pending.size === 0) return
    const idle = Date.now() - lastProgress
    if (idle < STALLED_ANYWAY_MS && (idle < STALLED_AFTER_MS || stream.writableLength < STALLED_BACKLOG_BYTES)) {
      timer = setTimeout(watch, STALL_CHECK_MS)
      return
    }
    stalled = true
    for (const release of [...pending]) release()
  }
  const bound = (deliver: Deliver): Deliver => (packet, cb) => {
    if (stalled) {
      counters.slowConsumerDropped++
      setImmediate(cb)
      return
    }
    let done = false
    const release = () => {
      if (done) return
      done = true
      pending!.delete(release)
      cb()
    }
    ;(pending ??= new Set()).add(release)
    timer ??= setTimeout(watch, STALL_CHECK_MS)
    deliver(packet, () => {
      progress()
      release()
    })
  }
  wrapDeliveries(client, bound)
}
