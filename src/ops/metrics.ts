/*
 * Prometheus metrics through prom-client. Each broker has its own registry,
 * so several brokers can share a process. Counters are read from the
 * broker's own counters at scrape time; rule durations are a histogram fed
 * as conversions finish.
 */
import client from 'prom-client'
import type { Counters } from '../broker/counters.js'
import type { RuleStateView } from '../rules/state.js'

export interface StatsSource {
  counters(): Readonly<Counters>
  connectedClients(): number
  sockets(): { accepted: number, refused: number, open: number }
  bytes(): { received: number, sent: number }
  retained(): number
  subscriptions(): number
  rules(): RuleStateView[]
  /** A cluster node's own counters (src/cluster/node.ts), labelled with its nodeId. */
  cluster?(): ClusterMetrics
  /** Every bridge's state and counters (src/bridges/, docs/bridges.md). */
  bridges?(): BridgeMetrics[]
}

export interface BridgeMetrics {
  name: string
  connected: boolean
  reconnects: number
  messagesIn: number
  messagesOut: number
  queued: number
  dropped: { queueFull: number, offline: number, refused: number, invalid: number }
}

export interface ClusterMetrics {
  nodeId: string
  ready: boolean
  outages: number
  held: number
  heldBytes: number
  refused: number
  qos0Dropped: number
  willsPublished: number
  willsFailed: number
}

const QOS = ['0', '1', '2'] as const
const PROTOCOLS = ['3', '4', '5'] as const
const RULE_COUNTERS = ['matched', 'outputs', 'dropped', 'failed', 'timeouts', 'memoryErrors', 'loopDropped', 'skipped', 'lostToHostCrash'] as const
const snake = (s: string) => s.replace(/[A-Z]/g, c => '_' + c.toLowerCase())

export class Metrics {
  readonly registry = new client.Registry()
  readonly #ruleDuration: client.Histogram<'rule'>

  constructor (source: StatsSource) {
    const r = this.registry
    client.collectDefaultMetrics({ register: r, prefix: 'switchyard_' })

    // A counter whose value we own: report the difference since the last scrape.
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Array<[Partial<Record<L, string>>, number]>) => {
      const seen = new Map<string, number>()
      return new client.Counter({
        name,
        help,
        labelNames,
        registers: [r],
        collect () {
          for (const [labels, value] of read()) {
            const key = JSON.stringify(labels)
            const delta = value - (seen.get(key) ?? 0)
            seen.set(key, value)
            // inc by 0 too: a labelled series should exist, at 0, before its first event
            if (delta >= 0) this.inc(labels as Partial<Record<L, string | number>>, delta)
          }
        }
      })
    }
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Array<[Partial<Record<L, string>>, number]>) =>
      new client.Gauge({
        name,
        help,
        labelNames,
        registers: [r],
        collect () {
          this.reset()
          for (const [labels, value] of read()) this.set(labels as Partial<Record<L, string | number>>, value)
        }
      })

    const c = () => source.counters()
    gauge('switchyard_clients_connected', 'Clients connected now.', [], () => [[{}, source.connectedClients()]])
    gauge('switchyard_clients_connected_by_protocol', 'Clients connected now, by MQTT protocol level: 3 (MQTT 3.1), 4 (3.1.1), 5.', ['protocol'],
      () => PROTOCOLS.map(p => [{ protocol: p }, c().connectedByProtocol[Number(p) as 3 | 4 | 5]]))
    gauge('switchyard_connections_open', 'Network connections open now, MQTT or not.', [], () => [[{}, source.sockets().open]])
    counter('switchyard_connections_total', 'Network connections accepted.', [], () => [[{}, source.sockets().accepted]])
    counter('switchyard_connections_refused_total', 'Network connections refused by limits.maxConnections.', [], () => [[{}, source.sockets().refused]])
    counter('switchyard_messages_received_total', 'PUBLISH packets received from clients, by QoS.', ['qos'], () => QOS.map(q => [{ qos: q }, c().publishReceived[Number(q)]!]))
    counter('switchyard_messages_sent_total', 'PUBLISH packets sent to clients, by the message QoS.', ['qos'], () => QOS.map(q => [{ qos: q }, c().publishSent[Number(q)]!]))
    counter('switchyard_bytes_received_total', 'Bytes received on all connections.', [], () => [[{}, source.bytes().received]])
    counter('switchyard_bytes_sent_total', 'Bytes sent on all connections.', [], () => [[{}, source.bytes().sent]])
    counter('switchyard_payload_bytes_received_total', 'PUBLISH payload bytes received.', [], () => [[{}, c().publishBytesReceived]])
    counter('switchyard_payload_bytes_sent_total', 'PUBLISH payload bytes sent.', [], () => [[{}, c().publishBytesSent]])
    gauge('switchyard_retained_messages', 'Retained messages stored (outside $SYS/).', [], () => [[{}, source.retained()]])
    gauge('switchyard_subscriptions', 'Subscriptions of the connected clients.', [], () => [[{}, source.subscriptions()]])
    counter('switchyard_messages_dropped_total', 'Messages dropped, by reason: queue_full (limits.maxQueuedMessages), denied (publish not allowed), slow_consumer (to a client that stopped reading).', ['reason'], () => [
      [{ reason: 'queue_full' }, c().queueDropped], [{ reason: 'denied' }, c().deniedPublishes], [{ reason: 'slow_consumer' }, c().slowConsumerDropped]
    ])
    counter('switchyard_subscriptions_denied_total', 'Subscriptions refused by the ACL.', [], () => [[{}, c().deniedSubscriptions]])
    counter('switchyard_auth_failures_total', 'CONNECTs refused for credentials or anonymity.', [], () => [[{}, c().authFailures]])
    counter('switchyard_oversized_packets_total', 'Connections closed for a packet over limits.maxPacketSize.', [], () => [[{}, c().oversizedPackets]])
    counter('switchyard_protocol_errors_total', 'Connections closed for malformed input before CONNECT completed.', [], () => [[{}, c().protocolErrors]])
    counter('switchyard_invalid_topics_total', 'Connections closed for a forbidden topic or filter, or U+0000 or ill-formed UTF-8 in any string.', [], () => [[{}, c().invalidTopics]])

    for (const name of RULE_COUNTERS) {
      counter(`switchyard_rule_${snake(name)}_total`, `Rule counter "${name}" (docs/rules.md), by rule.`, ['rule'], () => source.rules().map(rule => [{ rule: rule.name }, rule[name]]))
    }
    gauge('switchyard_rule_status', 'Rule status: 1 for the current one.', ['rule', 'status'], () => source.rules().map(rule => [{ rule: rule.name, status: rule.status }, 1]))
    const cl = source.cluster
    if (cl) {
      const node = () => ({ node: cl().nodeId })
      gauge('switchyard_cluster_ready', 'A cluster node: 1 while every Redis connection it uses is up and answers PING, else 0.', ['node'], () => [[node(), cl().ready ? 1 : 0]])
      counter('switchyard_cluster_redis_outages_total', 'A cluster node: times it lost Redis (docs/cluster-failure.md).', ['node'], () => [[node(), cl().outages]])
      gauge('switchyard_cluster_publishes_held', 'A cluster node: QoS 1/2 publishes held while Redis is away.', ['node'], () => [[node(), cl().held]])
      gauge('switchyard_cluster_publishes_held_bytes', 'A cluster node: bytes of the QoS 1/2 publishes held while Redis is away.', ['node'], () => [[node(), cl().heldBytes]])
      counter('switchyard_cluster_publishes_refused_total', 'A cluster node: publishes refused while Redis was away, by QoS: 0 dropped, 1/2 not acknowledged (connection closed).', ['node', 'qos'], () => [
        [{ ...node(), qos: '0' }, cl().qos0Dropped], [{ ...node(), qos: '1/2' }, cl().refused]
      ])
      counter('switchyard_cluster_wills_published_total', 'A cluster node: wills of dead nodes it published.', ['node'], () => [[node(), cl().willsPublished]])
      counter('switchyard_cluster_wills_failed_total', 'A cluster node: attempts to publish a dead node\'s will that failed (tried again).', ['node'], () => [[node(), cl().willsFailed]])
    }
    const br = source.bridges
    if (br) {
      const each = (read: (b: BridgeMetrics) => number) => () => br().map(b => [{ bridge: b.name }, read(b)] as [Partial<Record<'bridge', string>>, number])
      gauge('switchyard_bridge_connected', 'A bridge: 1 while connected to its remote broker, else 0.', ['bridge'], each(b => b.connected ? 1 : 0))
      counter('switchyard_bridge_messages_in_total', 'A bridge: messages received from the remote broker and published here.', ['bridge'], each(b => b.messagesIn))
      counter('switchyard_bridge_messages_out_total', 'A bridge: messages sent to the remote broker and acknowledged by it (QoS 1/2) or written (QoS 0).', ['bridge'], each(b => b.messagesOut))
      gauge('switchyard_bridge_queued', 'A bridge: messages in its out queue (waiting or in flight).', ['bridge'], each(b => b.queued))
      counter('switchyard_bridge_reconnects_total', 'A bridge: connections lost or refused, each followed by a reconnect after the backoff.', ['bridge'], each(b => b.reconnects))
      counter('switchyard_bridge_dropped_total', 'A bridge: messages dropped, by reason: queue_full (queue.maxMessages), offline (QoS 0 while disconnected), refused (by the remote broker), invalid (an incoming message this broker refused).', ['bridge', 'reason'],
        () => br().flatMap(b => ([['queue_full', b.dropped.queueFull], ['offline', b.dropped.offline], ['refused', b.dropped.refused], ['invalid', b.dropped.invalid]] as const).map(([reason, n]) => [{ bridge: b.name, reason }, n] as [Partial<Record<'bridge' | 'reason', string>>, number])))
    }
    this.#ruleDuration = new client.Histogram({
      name: 'switchyard_rule_duration_seconds',
      help: 'Execution time of one conversion, by rule.',
      labelNames: ['rule'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers: [r]
    })
  }

  observeRule (rule: string, ms: number): void {
    this.#ruleDuration.observe({ rule }, ms / 1000)
  }

  text (): Promise<string> {
    return this.registry.metrics()
  }

  get contentType (): string {
    return this.registry.contentType
  }
}
