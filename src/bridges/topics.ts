/*
 * Mosquitto's bridge topic semantics (mosquitto.conf(5), "topic pattern
 * [[[out | in | both] qos-level] local-prefix remote-prefix]"):
 *   in:   subscribe remotePrefix+pattern on the remote broker; a message on
 *         remotePrefix+X is published here on localPrefix+X;
 *   out:  a local message on localPrefix+X goes to the remote broker on
 *         remotePrefix+X;
 *   both: the two.
 * When several entries match one message, the first one in the list maps it,
 * so a message crosses once.
 */
import { topicMatches } from '../topics.js'
import type { BridgeTopic } from './config.js'
import type { QoS } from '../message.js'

export interface Route {
  /** The filter subscribed: on the remote broker for `in`, on the bus for `out`. */
  readonly filter: string
  readonly qos: QoS
  /** Strips this prefix ... */
  readonly from: string
  /** ... and puts this one in its place. */
  readonly to: string
}

export class TopicMap {
  /** Remote subscriptions and how their messages are named here. */
  readonly in: readonly Route[]
  /** Local filters and how their messages are named on the remote broker. */
  readonly out: readonly Route[]

  constructor (topics: readonly BridgeTopic[]) {
    const inbound: Route[] = []
    const outbound: Route[] = []
    for (const t of topics) {
      if (t.direction !== 'out') inbound.push({ filter: t.remotePrefix + t.pattern, qos: t.qos, from: t.remotePrefix, to: t.localPrefix })
      if (t.direction !== 'in') outbound.push({ filter: t.localPrefix + t.pattern, qos: t.qos, from: t.localPrefix, to: t.remotePrefix })
    }
    this.in = inbound
    this.out = outbound
  }

  /** The first `in` route whose remote filter matches `remoteTopic`, if any. */
  inbound (remoteTopic: string): Route | undefined {
    return this.in.find(r => topicMatches(r.filter, remoteTopic))
  }

  /** The first `out` route whose local filter matches `localTopic`, if any. */
  outbound (localTopic: string): Route | undefined {
    return this.out.find(r => topicMatches(r.filter, localTopic))
  }
}

/** The topic on the other side: `route.from` replaced by `route.to`. */
export function mapTopic (route: Route, topic: string): string {
  return route.to + topic.slice(route.from.length)
}

/** A message crosses at the lower of its own QoS and the route's, as a subscription grants [MQTT-3.8.4-6]. */
export function crossingQos (messageQos: QoS, route: Route): QoS {
  return Math.min(messageQos, route.qos) as QoS
}
