import { Transform } from 'stream'

export function noop () { }

// MQTT 5.0 Request Problem Information [MQTT-3.1.2-29]: build the `properties`
// block carrying a Reason String for an outgoing ACK. Currently the PUBACK /
// PUBREC error path uses it; it's the single gate to route any other ACK's
// Reason String through as they adopt one. Returns undefined — so no properties
// block is emitted — for non-v5 clients, when there is no reason string, or when
// the client set Request Problem Information to false (it then must not receive a
// Reason String or User Properties on packets other than PUBLISH/CONNACK/DISCONNECT).
export function ackProperties (client, reasonString) {
  if (client.version !== 5 || !reasonString || client._requestProblemInformation === false) {
    return undefined
  }
  return { reasonString }
}

// MQTT 5.0 §3.1.3.2: the Will Properties that are sent with the Will Message,
// all but Will Delay Interval, which is no PUBLISH property (§3.3.2.3).
const WILL_PUBLISH_PROPERTIES = ['payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'userProperties']

// The PUBLISH of a Will Message: topic, payload, QoS and retain, and the Will
// Properties a PUBLISH may carry. A stored will also carries brokerId and
// clientId (the persistence adds them); they are not the message's.
export function willPublishPacket (will) {
  const packet = {
    cmd: 'publish',
    topic: will.topic,
    payload: will.payload,
    qos: will.qos || 0,
    retain: will.retain || false,
    dup: false
  }
  // the will of a dead broker's client is published with no client: its
  // stored clientId is how a `published` listener tells whose will it is
  if (will.clientId !== undefined) packet.clientId = will.clientId
  const props = will.properties
  if (props) {
    let properties
    for (const name of WILL_PUBLISH_PROPERTIES) {
      // != null: a will read back from a store may hold null for an absent one
      if (props[name] != null) (properties ??= {})[name] = props[name]
    }
    if (properties) packet.properties = properties
  }
  return packet
}

// After a server DISCONNECT for a violation, the client may still be sending
// (it has not read the DISCONNECT yet): a socket destroyed under it answers
// with a TCP RST, and the client fails on its next send before it reads the
// DISCONNECT and its reason code (Paho test_flow_control2: it sends Receive
// Maximum + 1 QoS 2 PUBLISHes, then reads the PUBRECs, answering each with a
// PUBREL, and only then the DISCONNECT 0x93). So the connection's destroy(),
// which Client#close calls, is made a half close: FIN after what was written,
// the client's further bytes read and discarded, and the socket destroyed when
// the client closes its side, or after `lingerMs`. [MQTT-3.14.4-2]
export function lingerOnClose (conn, lingerMs = 2000) {
  const destroy = conn.destroy
  conn.destroy = function lingeringDestroy (err) {
    conn.destroy = destroy
    if (err || conn.destroyed || typeof conn.end !== 'function') return destroy.call(conn, err)
    conn.on('error', noop)
    const timer = setTimeout(() => destroy.call(conn), lingerMs)
    if (typeof timer.unref === 'function') timer.unref()
    conn.once('end', () => { clearTimeout(timer); destroy.call(conn) })
    conn.once('close', () => clearTimeout(timer))
    conn.end()
    conn.resume()
    return conn
  }
}

// Node clamps setTimeout delays above 2^31-1 ms (~24.8 days) to 1 ms, firing
// almost immediately. MQTT 5.0 session-expiry / will-delay intervals are uint32
// seconds (up to ~136 years), so a raw setTimeout would wipe long-lived sessions
// and fire delayed wills early.
export const MAX_TIMEOUT_MS = 2147483647

// Arms a timer that survives delays beyond setTimeout's cap by re-arming in
// chunks. Returns a handle whose clear() cancels whichever chunk is pending.
export function armLongTimer (delayMs, onFire) {
  // Guard against a stray non-finite/negative delay: setTimeout(NaN) coerces to
  // 0 and the re-arm math (NaN - NaN) would fire onFire immediately — a timer
  // that silently fires "now" instead of in the future is a bad failure mode.
  if (!Number.isFinite(delayMs)) {
    throw new TypeError('armLongTimer: delayMs must be a finite number')
  }
  delayMs = Math.max(0, delayMs)
  let timer
  const schedule = (remaining) => {
    const chunk = Math.min(remaining, MAX_TIMEOUT_MS)
    timer = setTimeout(() => {
      const left = remaining - chunk
      if (left > 0) {
        schedule(left)
      } else {
        onFire()
      }
    }, chunk)
    if (typeof timer.unref === 'function') timer.unref()
  }
  schedule(delayMs)
  return { clear () { clearTimeout(timer) } }
}

// MQTT remaining-length is a Variable Byte Integer encoded in 1-4 bytes; each
// added byte covers a 7-bit larger range. These are the value breakpoints at
// which the field grows by one byte. [MQTT-2.2.3]
const REMAINING_LENGTH_2_BYTES = 128 // 2^7
const REMAINING_LENGTH_3_BYTES = 16384 // 2^14
const REMAINING_LENGTH_4_BYTES = 2097152 // 2^21

// Total wire size of a packet from its parsed remaining-length: fixed header
// byte (1) + the remaining-length field bytes + the remaining length itself.
export function packetWireSize (remaining) {
  remaining = remaining || 0
  let lengthBytes = 1
  if (remaining >= REMAINING_LENGTH_2_BYTES) lengthBytes = 2
  if (remaining >= REMAINING_LENGTH_3_BYTES) lengthBytes = 3
  if (remaining >= REMAINING_LENGTH_4_BYTES) lengthBytes = 4
  return 1 + lengthBytes + remaining
}

// The routing libraries (mqemitter and the persistence trie) are backed by
// qlobber, which splits a topic on '/' and throws `too many words` once the
// number of levels exceeds its `max_words` limit (default 100). That throw is
// synchronous and uncaught, so a single deeply nested topic would crash the
// broker. We mirror qlobber's level count here (levels === split('/').length)
// to reject such topics before they reach qlobber. The '/' separator is the
// mqemitter/aedes-persistence default and is not configurable through aedes.
// Non-string topics have no level count; return 0 so the caller's own empty/
// invalid-topic checks handle them instead of this throwing a TypeError.
export function topicLevelCount (topic) {
  if (typeof topic !== 'string') return 0
  let levels = 1
  for (let i = 0; i < topic.length; i++) {
    if (topic.charCodeAt(i) === 47) levels++ // '/'
  }
  return levels
}

export function validateTopic (topic, message, maxTopicLevels) {
  if (!topic || topic.length === 0) { // [MQTT-3.8.3-3]
    return new Error('impossible to ' + message + ' to an empty topic')
  }

  // Reject deeply nested topics at the protocol boundary, before any
  // persistence side-effect or qlobber call. See topicLevelCount above.
  if (maxTopicLevels && topicLevelCount(topic) > maxTopicLevels) {
    return new Error('topic has too many levels')
  }

  const end = topic.length - 1
  const endMinus = end - 1
  const slashInPreEnd = endMinus > 0 && topic.charCodeAt(endMinus) !== 47

  for (let i = 0; i < topic.length; i++) {
    switch (topic.charCodeAt(i)) {
      case 35: { // #
        const notAtTheEnd = i !== end
        if (notAtTheEnd || slashInPreEnd) {
          return new Error('# is only allowed in ' + message + ' in the last position')
        }
        break
      }
      case 43: { // +
        const pastChar = i < end - 1 && topic.charCodeAt(i + 1) !== 47
        const preChar = i > 1 && topic.charCodeAt(i - 1) !== 47
        if (pastChar || preChar) {
          return new Error('+ is only allowed in ' + message + ' between /')
        }
        break
      }
    }
  }
}

export function through (transform) {
  return new Transform({
    objectMode: true,
    transform
  })
}

export function runFall (fns) {
  // run functions in fastfall style, only need the single argument function
  return function (arg, cb) {
    let i = 0
    const ctx = this
    function next (err, nextarg) {
      if (err || i === fns.length) {
        if (typeof cb === 'function') {
          cb.call(ctx, err, nextarg)
        }
        return
      }
      const fn = fns[i++]
      fn.call(ctx, nextarg, next)
    }
    next(null, arg)
  }
}

export function runSeries (state, actions, packet, done) {
  // runSeries runs functions in fastseries style
  done = (done || noop).bind(state)
  let i = 0
  function next (err) {
    if (err || i === actions.length) return done(err)
    actions[i++].call(state, packet, next)
  }
  next()
}

export function runParallel (state, fn, items, done) {
  // runParallel runs fn over every item in fastparallel style: fan them all
  // out concurrently and invoke done once — on the first error, or after all
  // have completed. Used instead of Promise.all(items.map(...)) so we don't
  // allocate a promise per item on the (control-path) subscribe/unsubscribe.
  done = (done || noop).bind(state)
  let remaining = items.length
  if (remaining === 0) return done()
  let finished = false
  function cb (err) {
    if (finished) return
    if (err) {
      finished = true
      return done(err)
    }
    if (--remaining === 0) {
      finished = true
      done()
    }
  }
  for (let i = 0; i < items.length; i++) {
    fn.call(state, items[i], cb)
  }
}

export function once (fn) {
  let called = false
  return function (err) {
    /* c8 ignore next -- guard against double-callback in async error paths */
    if (called) return
    called = true
    fn(err)
  }
}

/**
 * Async generator that groups items from a readable into batches.
 * Note: `fn(chunk)` is invoked eagerly for each item in the batch and
 * the generator yields an array of the results (often promises). Callers
 * must `await Promise.all(batch)` to apply backpressure before proceeding
 * to the next yielded batch.
 */
export async function * batch (readable, fn, batchSize) {
  let chunks = []
  for await (const chunk of readable) {
    chunks.push(fn(chunk))
    if (chunks.length === batchSize) {
      yield chunks
      chunks = []
    }
  }
  // if chunks is half full when the iterator ends
  if (chunks.length > 0) {
    yield chunks
  }
}

export const $SYS_PREFIX = '$SYS/'
