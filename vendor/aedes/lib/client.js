import mqtt from 'mqtt-packet'
import EventEmitter from 'node:events'
import util from 'util'
import Packet from 'aedes-packet'
import write from './write.js'
import QoSPacket from './qos-packet.js'
import handleSubscribe from './handlers/subscribe.js'
import handleUnsubscribe from './handlers/unsubscribe.js'
import handle from './handlers/index.js'
import { pipeline, finished } from 'stream'
import { through, packetWireSize } from './utils.js'
import { ReasonCodes } from './constants.js'

class Client {
  constructor (broker, conn, req) {
    const that = this

    // metadata
    this.closed = false
    this.connecting = false
    this.connected = false
    this.connackSent = false
    this.errored = false

    // mqtt params
    this.id = null
    this.clean = true
    this.version = null
    // Wire version used by write() for outbound serialization; cached at CONNECT.
    this._wireVersion = null
    // MQTT 5.0 Session Expiry Interval (seconds); set from CONNECT on connect.
    this.sessionExpiryInterval = 0

    // GHSA-52qw-whmv-87c5: keyed by topic filter / broker id from the wire, so an
    // inherited name ('constructor', '__proto__', ...) must read back as absent
    this.subscriptions = Object.create(null)
    this.duplicates = Object.create(null)
    // [MQTT-4.6.0-2..6] A resumed session's subscriptions are live before its
    // stored queue is replayed (handlers/connect.js restoreSubs, emptyQueue):
    // the QoS 1/2 messages that arrive meanwhile wait in _heldLive, and go out
    // after the replay, older messages first; null outside a replay.
    // _replayed: the stored messages the replay sent (brokerId:brokerCounter),
    // whose live copies are not sent again; null if there was no replay.
    this._heldLive = null
    this._replayed = null

    // MQTT 5.0 inbound Topic Alias map (alias number -> topic name), scoped
    // to this connection. Populated as the client registers aliases.
    this._topicAliases = new Map()
    // MQTT 5.0: what this connection's PUBLISHes to the client keep to (Receive
    // Maximum, Maximum Packet Size, Topic Aliases): lib/outbound.js, created by
    // write() at the first PUBLISH to a v5 client; null for v3/v4.
    this._outbound = null

    this.broker = broker
    this.conn = conn
    conn.client = this

    this._disconnected = false
    this._authorized = false
    // MQTT 5.0: set to the reason code of a server-initiated DISCONNECT
    // (takeover, shutdown, packet-too-large); null for a normal/client drop.
    this.disconnectReasonCode = null
    // MQTT 5.0: latch so an oversized frame is rejected (and reported) once.
    this._rejectingPacketTooLarge = false
    this._parsingBatch = 1
    this._nextId = Math.ceil(Math.random() * 65535)
    // Count of inbound QoS 2 PUBLISH currently stored awaiting PUBREL. Bounds
    // the per-client incoming persistence map against half-open QoS 2 flooding;
    // see the receive-window guard in lib/handlers/publish.js.
    this._inboundInflight = new Set()

    // Drain timeout tracking - coalesced timer approach
    this._drainTimer = null
    this._pendingDrains = []

    this.req = req
    this.connDetails = req ? req.connDetails : null

    // we use two variables for the will
    // because we store in _will while
    // we are authenticating
    this.will = null
    this._will = null

    this._parser = mqtt.parser()
    this._parser.client = this
    this._parser._queue = [] // queue packets received before client fires 'connect' event. Prevents memory leaks on 'connect' event
    this._parser.on('packet', enqueue)
    this.once('connected', dequeue)

    function nextBatch (err) {
      if (err) {
        that.emit('error', err)
        return
      }

      const client = that

      if (client._paused) {
        return
      }

      // An oversized frame is being rejected; the DISCONNECT/close that detaches
      // this listener is async, so stop reading/parsing now to bound how much of
      // a slow-drip oversized body is buffered during the close RTT. [MQTT-3.2.2-15]
      if (client._rejectingPacketTooLarge) {
        return
      }

      that._parsingBatch--
      if (that._parsingBatch <= 0) {
        that._parsingBatch = 0
        const buf = client.conn.read(null)
        if (buf) {
          client._parser.parse(buf)
          // MQTT 5.0 Maximum Packet Size: once the fixed header is parsed the
          // declared length is known. Reject an oversized frame here, before
          // the rest of its (possibly chunked) payload is buffered, rather than
          // only after the whole packet is parsed. [MQTT-3.2.2-15]
          const max = client.broker.maximumPacketSize
          const pending = client._parser.packet
          if (max > 0 && pending && pending.length > 0) {
            const wireSize = packetWireSize(pending.length)
            if (wireSize > max) client.rejectPacketTooLarge(wireSize)
          }
        }
      }
    }
    this._nextBatch = nextBatch

    conn.on('readable', nextBatch)

    this.on('error', this._onError)
    conn.on('error', this.emit.bind(this, 'error'))
    this._parser.on('error', this.emit.bind(this, 'error'))

    conn.on('end', this.close.bind(this))
    this._eos = finished(this.conn, this.close.bind(this))

    const getToForwardPacket = (_packet) => {
      // Mqttv5 3.8.3.1: https://docs.oasis-open.org/mqtt/mqtt/v5.0/mqtt-v5.0.html#_Toc3901169
      // prevent to forward messages sent by the same client when no-local flag is set
      if (_packet.clientId === that.id && _packet.nl) return

      const toForward = dedupe(that, _packet) &&
        that.broker.authorizeForward(that, _packet)

      return toForward
    }

    this.deliver0 = function deliverQoS0 (_packet, cb) {
      const toForward = getToForwardPacket(_packet)

      if (toForward) {
        // Give nodejs some time to clear stacks, or we will see
        // "Maximum call stack size exceeded" in a very high load
        setImmediate(() => {
          const packet = new Packet(toForward, broker)
          packet.qos = 0
          write(that, packet, function (err) {
            that._onError(err)
            cb() // don't pass the error here or it will be thrown by mqemitter
          })
        })
      } else {
        setImmediate(cb)
      }
    }

    this.deliverQoS = function deliverQoS (_packet, cb) {
      // downgrade to qos0 if requested by publish
      if (_packet.qos === 0) {
        that.deliver0(_packet, cb)
        return
      }
      if (that._heldLive !== null) {
        that._heldLive.push(_packet)
        // the emitter waits for cb: not held, or every client would wait
        setImmediate(cb)
        return
      }
      that._deliverLive(_packet, cb)
    }

    this._deliverLive = function deliverLive (_packet, cb) {
      if (that._replayed !== null && _packet.brokerId && that._replayed.has(_packet.brokerId + ':' + _packet.brokerCounter)) {
        setImmediate(cb)
        return
      }
      const toForward = getToForwardPacket(_packet)

      if (toForward) {
        setImmediate(() => {
          const packet = new QoSPacket(toForward, that)
          // Downgrading to client subscription qos if needed
          const clientSub = that.subscriptions[packet.topic]
          if (clientSub && (clientSub.qos || 0) < packet.qos) {
            packet.qos = clientSub.qos
          }
          packet.writeCallback = cb
          const doWriteQoS = (err = null) => writeQoS(err, that, packet)
          if (that.clean || packet.retain) {
            doWriteQoS()
          } else {
            broker.persistence.outgoingUpdate(that, packet)
              .then(doWriteQoS, doWriteQoS)
          }
        })
      } else if (that.clean === false) {
        that.broker.persistence.outgoingClearMessageId(that, _packet)
          .then(noop, noop)
        // we consider this to be an error, since the packet is undefined
        // so there's nothing to send
        setImmediate(cb)
      } else {
        setImmediate(cb)
      }
    }

    this._keepaliveTimer = null
    this._keepaliveInterval = -1

    this._connectTimer = setTimeout(function () {
      that.emit('error', new Error('connect did not arrive in time'))
    }, broker.connectTimeout)
  }

  _onError (err) {
    if (!err) return

    this.errored = true
    this.conn.removeAllListeners('error')
    this.conn.on('error', noop)
    // hack to clean up the write callbacks in case of error
    if (!this.conn.destroyed) {
      this.conn.destroy(err)
    }
    this.broker.emit(this.id ? 'clientError' : 'connectionError', this, err)
    this.close()
  }

  publish (message, done) {
    const packet = new Packet(message, this.broker)
    const that = this
    if (packet.qos === 0) {
      // skip offline and send it as it is
      this.deliver0(packet, done)
      return
    }

    if (!this.clean && this.id) {
      this.broker.persistence.outgoingEnqueue({ clientId: this.id }, packet)
        .then(() => that.deliverQoS(packet, done), done)
    } else {
      that.deliverQoS(packet, done)
    }
  }

  subscribe (packet, done) {
    if (!packet.subscriptions) {
      if (!Array.isArray(packet)) {
        packet = [packet]
      }
      packet = {
        subscriptions: packet
      }
    }
    handleSubscribe(this, packet, false, done)
  }

  unsubscribe (packet, done) {
    if (!packet.unsubscriptions) {
      if (!Array.isArray(packet)) {
        packet = [packet]
      }
      packet = {
        unsubscriptions: packet
      }
    }
    handleUnsubscribe(this, packet, done)
  }

  /**
   * Handle successful drain - socket is writable again
   * Clears timer and completes all pending drain callbacks
   */
  _handleDrain () {
    // Clear the single per-client timer
    if (this._drainTimer) {
      clearTimeout(this._drainTimer)
      this._drainTimer = null
    }

    // Complete all pending drain callbacks
    const pending = this._pendingDrains
    this._pendingDrains = []
    for (let i = 0; i < pending.length; i++) {
      setImmediate(pending[i], null, this)
    }
  }

  /**
   * Handle drain timeout - client failed to drain within timeout
   * Disconnects the client and fails all pending callbacks
   */
  _handleDrainTimeout () {
    this._drainTimer = null

    // Remove drain listener to prevent it firing after disconnect
    if (this._onDrainBound) {
      this.conn.removeListener('drain', this._onDrainBound)
    }

    // Fail all pending callbacks
    const error = new Error('drain timeout')
    const pending = this._pendingDrains
    this._pendingDrains = []
    for (let i = 0; i < pending.length; i++) {
      setImmediate(pending[i], error, this)
    }

    // Disconnect the slow client
    this.conn.destroy(error)
  }

  /**
   * Register a callback to be called when socket drains
   * Uses per-client coalesced timer to reduce timer overhead
   * @param {Function} callback - called with (err, client)
   */
  waitForDrain (callback) {
    const drainTimeout = this.broker?.opts?.drainTimeout

    if (drainTimeout > 0) {
      // Per-client coalesced timer approach:
      // Only create ONE timer per client, regardless of pending writes

      // Add this callback to pending queue
      this._pendingDrains.push(callback)

      // If no timer exists, create one and set up drain listener
      if (!this._drainTimer) {
        // Create bound drain handler (if not already created)
        if (!this._onDrainBound) {
          this._onDrainBound = this._handleDrain.bind(this)
        }

        // Set up single drain listener
        this.conn.once('drain', this._onDrainBound)

        // Create single timer for this client
        this._drainTimer = setTimeout(
          this._handleDrainTimeout.bind(this),
          drainTimeout
        )
        this._drainTimer.unref() // Don't keep process alive
      }
      // else: timer already running, just queued the callback
    } else {
      // Without drain timeout: wait indefinitely (original behavior)
      this.conn.once('drain', callback)
    }
  }

  // MQTT 5.0: gracefully disconnect a client by sending a DISCONNECT packet
  // with a reason code (and optional properties) before closing the
  // connection. For v3/v4 clients, which have no server-side DISCONNECT, this
  // just closes the connection. [MQTT-3.14.0-1]
  disconnect (opts, done) {
    if (typeof opts === 'function') {
      done = opts
      opts = {}
    }
    opts = opts || {}

    const reasonCode = opts.reasonCode ?? 0
    // Record the server-sent reason code so it is observable on the subsequent
    // 'clientDisconnect' broker event: ops can distinguish a kick (0x8E
    // takeover, 0x8B shutdown, 0x95 packet-too-large) from a normal drop. v5
    // only — a numeric v5 reason code is meaningless to a v3/v4 client.
    if (this.version === 5) {
      this.disconnectReasonCode = reasonCode
    }

    if (this.version === 5 && this.connected && !this.closed && !this.errored) {
      const packet = { cmd: 'disconnect', reasonCode }
      if (opts.properties) {
        packet.properties = opts.properties
      }
      const that = this
      write(this, packet, function (err) {
        // Surface a failed graceful close instead of dropping it silently.
        if (err) that.emit('error', err)
        that.close(done)
      })
    } else {
      this.close(done)
    }
  }

  // MQTT 5.0 Maximum Packet Size: reject an oversized inbound frame. A
  // connected v5 client is told why with a 0x95 (Packet too large) DISCONNECT;
  // otherwise (pre-auth, or a v3/v4 client with no server-side DISCONNECT) the
  // connection is dropped. Either way the rejection is observable, carrying the
  // offending size and the configured limit. [MQTT-3.2.2-15]
  rejectPacketTooLarge (size, done) {
    // Reject once per offending frame. Two callers can re-enter this:
    //  - nextBatch (read loop, partial frames): the flag below makes nextBatch
    //    bail before the *next* readable event, stopping further buffering; and
    //  - handle() (lib/handlers/index.js): when two complete oversized packets
    //    arrive in one TCP segment, _parser.parse() emits 'packet' twice
    //    *synchronously* within a single call → handle → here, twice. disconnect()
    //    defers close() via setImmediate, so connected/closed/errored are
    //    unchanged between the two calls — only this early-return latch collapses
    //    them to a single clientError + 0x95 DISCONNECT.
    if (this._rejectingPacketTooLarge) {
      if (typeof done === 'function') done()
      return
    }
    this._rejectingPacketTooLarge = true
    const err = new Error('packet too large')
    err.size = size
    err.maximumPacketSize = this.broker.maximumPacketSize
    if (this.version === 5 && this.connected && !this.closed && !this.errored) {
      // Surface telemetry (the 0x95 DISCONNECT below does not pass through the
      // 'error' path), then tell the client why before closing.
      this.broker.emit('clientError', this, err)
      this.disconnect({ reasonCode: ReasonCodes.PACKET_TOO_LARGE }, done)
    } else {
      if (typeof done === 'function') done()
      this.emit('error', err)
    }
  }

  close (done) {
    if (this.closed) {
      if (typeof done === 'function') {
        done()
      }
      return
    }

    const that = this
    const conn = this.conn

    this.closed = true

    this._parser.removeAllListeners('packet')
    conn.removeAllListeners('readable')

    this._parser._queue = null

    if (this._keepaliveTimer) {
      clearTimeout(this._keepaliveTimer)
      this._keepaliveInterval = -1
      this._keepaliveTimer = null
    }

    if (this._connectTimer) {
      clearTimeout(this._connectTimer)
      this._connectTimer = null
    }

    // Clean up drain timeout timer, listener, and flush pending callbacks
    if (this._drainTimer) {
      clearTimeout(this._drainTimer)
      this._drainTimer = null
    }
    if (this._onDrainBound) {
      this.conn.removeListener('drain', this._onDrainBound)
    }
    // Flush pending drain callbacks with connection closed error
    const error = new Error('connection closed')
    const pending = this._pendingDrains
    this._pendingDrains = []
    for (let i = 0; i < pending.length; i++) {
      setImmediate(pending[i], error, this)
    }

    this._eos()
    this._eos = noop

    handleUnsubscribe(
      this,
      {
        unsubscriptions: Object.keys(this.subscriptions)
      },
      finish)

    function finish () {
      const will = that.will
      // _disconnected is set only if client is disconnected with a valid disconnect packet
      if (!that._disconnected && will) {
        // MQTT 5.0 Will Delay Interval: publish after the delay (capped by the
        // session expiry, since the will is sent no later than session end)
        // instead of immediately. A reconnect within the delay cancels it.
        const willDelay = (that.version === 5 && will.properties?.willDelayInterval) || 0
        const delay = Math.min(willDelay, that.sessionExpiryInterval)
        if (delay > 0) {
          that.broker.scheduleWill(that, will, delay)
        } else {
          that.broker.publishWill(that, will)
        }
      } else if (will) {
        // delete the persisted will even on clean disconnect https://docs.oasis-open.org/mqtt/mqtt/v3.1.1/os/mqtt-v3.1.1-os.html#_Toc385349232
        that.broker.persistence.delWill({
          id: that.id,
          brokerId: that.broker.id
        }).then(noop, noop)
      }

      that.will = null // this function might be called twice
      that._will = null

      that.connected = false
      that.connecting = false

      conn.removeAllListeners('error')
      conn.on('error', noop)

      if (that.broker.clients[that.id] && that._authorized) {
        that.broker.unregisterClient(that)
        // MQTT 5.0: keep / expire / wipe the session per its expiry interval.
        that.broker.scheduleSessionExpiry(that)
      }

      // [MQTT-3.1.2-6]: a clean session ends with the connection. Without this a
      // client that publishes QoS 2 and never returns leaves its dedup entry
      // behind forever, and repeating it with fresh client ids grows the store
      // without bound.
      const persistence = that.broker.persistence
      if (that.clean && typeof persistence?.cleanIncoming === 'function') {
        persistence.cleanIncoming(that).then(noop, noop)
      }

      // clear up the drain event listeners
      that.conn.emit('drain')
      that.conn.removeAllListeners('drain')

      conn.destroy()

      if (typeof done === 'function') {
        done()
      }
    }
  }

  // From restoring a session's subscriptions to the end of its replay.
  _holdLive () {
    this._heldLive = []
    this._replayed = new Set()
  }

  _replaying (packet) {
    if (this._replayed !== null && packet.brokerId) {
      this._replayed.add(packet.brokerId + ':' + packet.brokerCounter)
    }
  }

  // Sends what arrived during the replay, in order, then lets live messages
  // through; those arriving meanwhile queue behind. Once closed, the held
  // messages are left to the store.
  _releaseLive () {
    const held = this._heldLive
    if (held === null) return
    const next = () => {
      const packet = this.closed ? undefined : held.shift()
      if (packet === undefined) {
        this._heldLive = null
        return
      }
      this._deliverLive(packet, next)
    }
    next()
  }

  pause () {
    this._paused = true
  }

  resume () {
    this._paused = false
    this._nextBatch()
  }

  emptyOutgoingQueue (done) {
    const client = this
    const persistence = client.broker.persistence

    function filter (packet, enc, next) {
      persistence.outgoingClearMessageId(client, packet)
        .then(pkt => next(null, pkt), next)
    }

    pipeline(
      persistence.outgoingStream(client),
      through(filter),
      done
    )
  }
}

function dedupe (client, packet) {
  const id = packet.brokerId
  if (!id) {
    return true
  }
  const duplicates = client.duplicates
  const counter = packet.brokerCounter
  const result = (duplicates[id] || 0) < counter
  if (result) {
    duplicates[id] = counter
  }
  return result
}

function writeQoS (err, client, packet) {
  if (err) {
    // is this right, or we should ignore thins?
    client.emit('error', err)
    // don't pass the error here or it will be thrown by mqemitter
    packet.writeCallback()
  } else {
    write(client, packet, function (err) {
      if (err) {
        client.emit('error', err)
      }
      // don't pass the error here or it will be thrown by mqemitter
      packet.writeCallback()
    })
  }
}

util.inherits(Client, EventEmitter)

function enqueue (packet) {
  const client = this.client
  client._parsingBatch++
  // already connected or it's the first packet
  if (client.connackSent || client._parsingBatch === 1) {
    handle(client, packet, client._nextBatch)
  } else {
    if (this._queue.length < client.broker.queueLimit) {
      this._queue.push(packet)
    } else {
      this.emit('error', new Error('Client queue limit reached'))
    }
  }
}

function dequeue () {
  const q = this._parser._queue
  if (q) {
    for (let i = 0, len = q.length; i < len; i++) {
      handle(this, q[i], this._nextBatch)
    }

    this._parser._queue = null
  }
}

function noop () {}

export default Client
