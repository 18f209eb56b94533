// MQTT 5.0 Shared Subscriptions [MQTT-4.8.2], for v5 and (as Mosquitto does)
// v3.1.1 clients: a subscription to `$share/<ShareName>/<filter>` makes the
// client a member of the group <ShareName> on <filter>, and each message
// matching <filter> goes to exactly one member of each group, in turn (round
// robin, as Mosquitto), at the lesser of its QoS and that member's granted QoS.
//
// One SharedSubscriptions per broker instance (broker.shared); no module state.
//
// How a message travels:
//  1. route(): a step of the broker's publish pipeline, before emitPacket (so,
//     for QoS > 0, before the publisher's PUBACK is released). For every group
//     whose filter matches, pick() chooses one member: a connected one in turn,
//     or, when none is connected and the message is QoS > 0, an offline
//     persistent member (its message is queued in the store, as Mosquitto
//     does). With no member left, the group does not get the message. For a
//     persistent member the message is enqueued in its outgoing queue here, so
//     it is stored before the publisher is acknowledged. The choice is written
//     on the packet (packet.sharedTargets, a plain object: it survives an
//     emitter that serializes packets).
//  2. the group's emitter listener (one per group, on its filter) delivers to
//     the chosen member if it is connected here. A packet with no choice for
//     the group (emitted without route(), or joined meanwhile) is routed there.
//
// Membership: join() on SUBSCRIBE and on the restore of a persistent session;
// leave() when the connection closes (a persistent member stays, offline, and
// is bound again when its session is restored); forget() on UNSUBSCRIBE;
// forgetClient() when the session ends (expiry, Clean Start).
//
// A cluster (several brokers on one emitter and one store) makes the choice
// cluster-wide: it sets `nodeId` (this broker's, unique in the cluster) and a
// `directory`, told of every change of a local membership (join, leave,
// forget, forgetClient), which keeps the cluster's membership somewhere
// shared and hands each group's view back through applyRemote(). Members
// connected to another broker then carry its id (`node`): pick() chooses
// among every member of the cluster, the target names the broker that
// delivers, and the others' listeners let the message pass. The listener's
// fallback re-picks among this broker's connected members only.

// [MQTT-4.8.2] the topic filter of a Shared Subscription starts with this
export const SHARE_PREFIX = '$share/'

// v5 SUBACK reason code for an invalid share name or filter [MQTT-4.8.2-1/2]
export const TOPIC_FILTER_INVALID = 0x8F

export function isShared (topic) {
  return typeof topic === 'string' && topic.startsWith(SHARE_PREFIX)
}

// `$share/<name>/<filter>` → { name, filter }, or null when invalid: the
// ShareName is at least one character, with no '+' or '#' [MQTT-4.8.2-1]
// [MQTT-4.8.2-2], and is followed by '/' and a non-empty filter.
export function parseShared (topic) {
  if (!isShared(topic)) return null
  const slash = topic.indexOf('/', SHARE_PREFIX.length)
  if (slash === -1) return null
  const name = topic.slice(SHARE_PREFIX.length, slash)
  const filter = topic.slice(slash + 1)
  if (name.length === 0 || filter.length === 0) return null
  if (name.includes('+') || name.includes('#')) return null
  return { name, filter }
}

class Member {
  constructor (clientId) {
    this.clientId = clientId
    // the connected Client, or null while a persistent member is offline
    this.client = null
    // the subscription's delivery function (lib/handlers/subscribe.js addSubs)
    this.deliver = null
    this.qos = 0
    // in a cluster: the broker (nodeId) it is connected to when that is not
    // this one, else null; and whether its session is clean (a remote one's)
    this.node = null
    this.clean = true
  }
}

class Group {
  constructor (key, name, filter) {
    this.key = key // `$share/<name>/<filter>`, as in client.subscriptions
    this.name = name
    this.filter = filter
    this.members = []
    this.next = 0 // round-robin cursor into members
    this.listener = null
    this.waiting = null // while its listener is being subscribed: callbacks to run then
  }

  member (clientId) {
    for (let i = 0; i < this.members.length; i++) {
      if (this.members[i].clientId === clientId) return this.members[i]
    }
    return undefined
  }

  remove (member) {
    const i = this.members.indexOf(member)
    if (i === -1) return
    this.members.splice(i, 1)
    if (this.next > i) this.next--
    if (this.next >= this.members.length) this.next = 0
  }

  // The next member in turn that `eligible` accepts, and the cursor moves past it.
  take (eligible) {
    const n = this.members.length
    for (let i = 0; i < n; i++) {
      const at = (this.next + i) % n
      const member = this.members[at]
      if (eligible(member)) {
        this.next = (at + 1) % n
        return member
      }
    }
    return null
  }
}

// connected to this broker
const connected = (member) => member.client !== null
// connected to this broker or (in a cluster) to another one
const reachable = (member) => member.client !== null || member.node !== null
// offline (persistent), for a QoS > 0 message: queued in the store
const queueable = (member) => member.client === null && member.node === null && member.qos > 0

export class SharedSubscriptions {
  constructor (broker) {
    this.broker = broker
    this.groups = new Map() // key → Group
    this.byClient = new Map() // clientId → Set of the groups it is a member of
    // A cluster sets both: this broker's id, and the object told of local
    // membership changes ({ joined, left, forgot, forgotClient }).
    this.nodeId = null
    this.directory = null
    // A client registers after its persistent session's subscriptions are
    // restored (connect.js restoreSubs, which joins them again): a membership
    // of its id still offline then is no longer in its session (Clean Start).
    broker.on('client', (client) => this.forgetClient(client.id))
  }

  // Membership of `client` in the group named by `key` (`$share/<name>/<filter>`,
  // already validated), with the subscription's granted QoS and delivery function.
  join (client, key, qos, deliver, done) {
    const { group, created } = this._group(key)
    const member = this._member(group, client.id)
    member.client = client
    member.deliver = deliver
    member.qos = qos
    member.node = null
    member.clean = client.clean !== false
    this.directory?.joined(key, client.id, qos, member.clean)
    if (created) {
      this._subscribe(group, done)
    } else if (group.waiting !== null) {
      // its listener is being subscribed (a group a cluster's directory
      // created): the SUBACK waits for it, or a message could miss it
      group.waiting.push(done)
    } else {
      done()
    }
  }

  _subscribe (group, done) {
    group.waiting = [done]
    this.broker.subscribe(group.filter, group.listener, (err) => {
      const waiting = group.waiting
      group.waiting = null
      for (const fn of waiting) fn(err)
    })
  }

  _group (key) {
    let group = this.groups.get(key)
    if (group !== undefined) return { group, created: false }
    const { name, filter } = parseShared(key)
    group = new Group(key, name, filter)
    group.listener = this._listener(group)
    this.groups.set(key, group)
    return { group, created: true }
  }

  _member (group, clientId) {
    let member = group.member(clientId)
    if (member === undefined) {
      member = new Member(clientId)
      group.members.push(member)
      let groups = this.byClient.get(clientId)
      if (groups === undefined) this.byClient.set(clientId, groups = new Set())
      groups.add(group)
    }
    return member
  }

  // The connection of `client` closed. A persistent session stays a member,
  // offline: QoS > 0 messages are queued for it when no member is connected.
  leave (client, key, done) {
    const group = this.groups.get(key)
    const member = group?.member(client.id)
    // unknown, or bound already to a newer connection with the same id (takeover)
    if (member === undefined || member.client !== client) return done()
    this.directory?.left(key, client.id, client.clean !== false)
    if (client.clean === false) {
      member.client = null
      member.deliver = null
      return done()
    }
    this._remove(group, member, done)
  }

  // UNSUBSCRIBE: the membership ends.
  forget (client, key, done) {
    const group = this.groups.get(key)
    const member = group?.member(client.id)
    if (member === undefined) return done()
    this.directory?.forgot(key, client.id)
    this._remove(group, member, done)
  }

  // The session of `clientId` ended (expiry, Clean Start): its offline
  // memberships end. Memberships bound to a live connection are kept.
  forgetClient (clientId) {
    this.directory?.forgotClient(clientId)
    const groups = this.byClient.get(clientId)
    if (groups === undefined) return
    for (const group of [...groups]) {
      const member = group.member(clientId)
      if (member !== undefined && member.client === null) this._remove(group, member, noop)
    }
  }

  _remove (group, member, done) {
    group.remove(member)
    const groups = this.byClient.get(member.clientId)
    groups?.delete(group)
    if (groups?.size === 0) this.byClient.delete(member.clientId)
    if (group.members.length > 0) return done()
    this.groups.delete(group.key)
    this.broker.unsubscribe(group.filter, group.listener, done)
  }

  // A cluster's view of the group `key`, from its directory: entries
  // { clientId, node (a broker's id, or null: offline), qos, clean }.
  // Members bound to a connection here stay as they are (this broker is
  // their authority); the others are added, updated or removed. The group is
  // created (its listener subscribed) or deleted as it gains its first or
  // loses its last member. No directory call: this is its own answer.
  applyRemote (key, entries, done = noop) {
    let group = this.groups.get(key)
    const seen = new Set()
    for (const e of entries) {
      // A record naming this broker for a member not connected here is
      // stale: read before this broker's own leave reached the directory,
      // whose update is on its way. Kept as it is here, never added.
      if (e.node === this.nodeId && this.nodeId !== null && group?.member(e.clientId) === undefined) continue
      seen.add(e.clientId)
    }
    if (group === undefined && seen.size === 0) return done()
    let created = false
    if (group === undefined) ({ group, created } = this._group(key))
    for (const e of entries) {
      if (!seen.has(e.clientId)) continue
      const member = this._member(group, e.clientId)
      if (member.client !== null || e.node === this.nodeId) continue
      member.node = e.node
      member.qos = e.qos
      member.clean = e.clean
    }
    for (const member of [...group.members]) {
      if (member.client === null && !seen.has(member.clientId)) this._drop(group, member)
    }
    if (created) {
      if (group.members.length === 0) {
        this.groups.delete(key)
        return done()
      }
      return this._subscribe(group, done)
    }
    if (group.members.length > 0) return done()
    this.groups.delete(key)
    this.broker.unsubscribe(group.filter, group.listener, done)
  }

  // Removes `member` from `group` without ending the group.
  _drop (group, member) {
    group.remove(member)
    const groups = this.byClient.get(member.clientId)
    groups?.delete(group)
    if (groups?.size === 0) this.byClient.delete(member.clientId)
  }

  // The member of `group` that gets `packet`, or null: a connected one in
  // turn (on any broker of a cluster), else an offline persistent one.
  pick (group, packet) {
    return group.take(reachable) ?? (packet.qos > 0 ? group.take(queueable) : null)
  }

  // Without a choice made by the publishing broker (it did not know the
  // group yet), one broker of a cluster chooses: the smallest id among those
  // with a connected member in this broker's view. Alone, this broker does.
  _choosesUnrouted (group) {
    if (this.nodeId === null) return true
    let least = null
    for (const member of group.members) {
      const node = member.client !== null ? this.nodeId : member.node
      if (node !== null && (least === null || node < least)) least = node
    }
    return least === this.nodeId
  }

  // Publish pipeline step (aedes.js), before emitPacket.
  route (packet, done) {
    if (this.groups.size === 0) return done()
    const topic = packet.topic
    let targets = null
    let queue = null
    for (const group of this.groups.values()) {
      if (!topicMatches(group.filter, topic)) continue
      const member = this.pick(group, packet)
      targets = targets ?? {}
      if (member === null) {
        targets[group.key] = null
        continue
      }
      const queued = needsQueue(member, packet)
      const node = member.client !== null ? this.nodeId : member.node
      targets[group.key] = { clientId: member.clientId, queued, node }
      if (queued) (queue = queue ?? []).push(queuedSub(member, group))
    }
    if (targets !== null) packet.sharedTargets = targets
    if (queue === null) return done()
    this.broker.persistence.outgoingEnqueueCombi(queue, packet)
      .then(() => done(null), done)
  }

  _listener (group) {
    const that = this
    const key = group.key
    return function deliverShared (packet, cb) {
      // [MQTT-4.7.2-1] a filter starting with a wildcard does not match $ topics
      if (packet.topic.charCodeAt(0) === 36 && startsWithWildcard(group.filter)) return cb()
      const target = packet.sharedTargets?.[key]
      if (target === null) return cb() // routed: no member
      if (target !== undefined) {
        // chosen on another broker of the cluster: delivered there
        if (target.node != null && target.node !== that.nodeId) return cb()
        const member = group.member(target.clientId)
        if (member !== undefined && member.client !== null) return member.deliver(packet, cb)
        // stored in its queue: it gets the message when its session resumes
        if (target.queued) return cb()
        // offline when chosen (no broker's): not this broker's to re-pick
        if (target.node == null && that.nodeId !== null) return cb()
      } else if (!that._choosesUnrouted(group)) {
        return cb()
      }
      // not routed for this group, or its member disconnected since: choose
      // now, among the members connected here
      const member = group.take(connected)
      if (member === null) return cb()
      if (!needsQueue(member, packet)) return member.deliver(packet, cb)
      that.broker.persistence.outgoingEnqueueCombi([queuedSub(member, group)], packet)
        .then(() => member.deliver(packet, cb), (err) => {
          that.broker.emit('error', err)
          cb()
        })
    }
  }
}

// A QoS > 0 message for a persistent member is stored in its outgoing queue
// before delivery: a connected member's delivery then updates that entry
// (outgoingUpdate), an offline member gets it when its session resumes.
function needsQueue (member, packet) {
  if (packet.qos === 0 || member.qos === 0) return false
  if (member.client !== null) return member.client.clean === false
  // connected to another broker: stored by this one, updated by that one's delivery
  if (member.node !== null) return !member.clean
  return true
}

function queuedSub (member, group) {
  return { clientId: member.clientId, topic: group.key, qos: member.qos }
}

function startsWithWildcard (filter) {
  const code = filter.charCodeAt(0)
  return code === 43 || code === 35 // + or #
}

// Does `filter` match `topic` [MQTT-4.7]? '+' is one level (possibly empty),
// '#' the rest, parent level included; a filter starting with a wildcard does
// not match a topic starting with '$' [MQTT-4.7.2-1].
export function topicMatches (filter, topic) {
  if (topic.charCodeAt(0) === 36 && startsWithWildcard(filter)) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}

function noop () {}
