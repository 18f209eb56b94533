// npm run bench [-- --quick] [--only=qos0,fanout|mqtt5|cluster] [--brokers=switchyard-memory,aedes-memory]
//                 [--switchyard-dist=/tmp/before/dist [--switchyard-label=switchyard@aedes-1.2]]
//
// Runs every scenario against each broker in turn, in one run on this
// machine, then prints a table of ratios (Switchyard / Aedes, Switchyard /
// Mosquitto). Absolute numbers are printed too, but only the ratios mean
// much on a noisy machine. Never part of `npm test`.
//
// --only=mqtt5 runs the MQTT 5 scenarios with the 3.1.1 ones they are
// compared with (qos0, qos1). --switchyard-dist adds a second Switchyard
// build (another checkout's dist/, with its own node_modules beside it) to
// every 3.1.1 scenario Switchyard runs, as broker `switchyard-before`, and
// prints a before/after table: the same scenarios, one run, one machine.
// --only=qos0-json,rule-drop,rule: issue 16's diagnostics (run only when named) split a converted
// message's cost: the JSON messages delivered with no rule, and with a rule that publishes nothing.
// BENCH_NODE_ARGS adds node flags to each broker (e.g. --cpu-prof); BENCH_SWITCHYARD_BIN another entry point.
// --only=cluster runs the cluster scenarios (issue 13; they need redis-server):
// single node (memory, LevelDB), one node on Redis, two nodes, workers: 2.
// --only=bridge (issue 14): QoS 0 and 1 through one bridge, in and out, Switchyard's
// against Mosquitto's (bench/bridge.js).
// --only=console (issue 15): the QoS 0 flood with the admin listener on, without
// and with one console tail (GET /api/stream?filter=#) reading every message.
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { BRIDGE_BROKERS, BRIDGE_IDS, bridgeScenarios, bridgeTable } from './bridge.js'
import { BROKERS, addSwitchyardBuild, collectGarbage, cpuMicros, ownCpuMicros, freePort, hasMosquitto, hasRedis, peakRss, removeDir, rss, tempDir } from './lib/brokers.js'

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const GROUPS = {
  mqtt5: ['qos0', 'qos1', 'v5-qos0', 'v5-qos1', 'v5-qos0-long', 'v5-qos0-alias', 'v5-qos1-long', 'v5-qos1-alias'],
  cluster: ['cluster-qos0', 'cluster-qos1', 'cluster-qos1-persistent', 'cluster-pairs-qos0', 'cluster-pairs-qos1', 'cluster-latency-qos0', 'cluster-latency-qos1'],
  console: ['console-none', 'console-tail'],
  bridge: BRIDGE_IDS
}
const only = args.find(a => a.startsWith('--only='))?.slice(7).split(',').flatMap(id => GROUPS[id] ?? [id])
const brokerArg = args.find(a => a.startsWith('--brokers='))?.slice(10).split(',')
const beforeDist = args.find(a => a.startsWith('--switchyard-dist='))?.slice(18)
const beforeLabel = args.find(a => a.startsWith('--switchyard-label='))?.slice(19) ?? 'switchyard@aedes-1.2'
if (beforeDist) addSwitchyardBuild('switchyard-before', beforeLabel, path.resolve(beforeDist))
const WORKER = new URL('./lib/worker.js', import.meta.url)

const CONVERTER = `export const topics = ['tb/mqtt-integration-tutorial/sensors/+/temperature']
export function convert (msg) {
  const device = msg.topic.split('/')[3]
  const r = JSON.parse(msg.payload)
  return { topic: 'devices/' + device + '/telemetry', payload: { temperature: r.value, seq: r.seq, p: r.p, ts: r.ts } }
}`
// Diagnostic (issue 16): the rule path without its output; the subscriber takes the raw topic
const DROPPER = `export const topics = ['tb/mqtt-integration-tutorial/sensors/+/temperature']
export function convert (msg) {
  JSON.parse(msg.payload)
  return []
}`
const siteRule = i => `export const topics = ['site/${i}/+/temperature']
export function convert (msg) {
  const r = JSON.parse(msg.payload)
  return { topic: 'out/${i}', payload: { temperature: r.value, seq: r.seq, p: r.p, ts: r.ts } }
}`
const thousandRules = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`site${i}.js`, siteRule(i)]))
const hundredRules = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`site${i}.js`, siteRule(i)]))

const n = (full, small) => quick ? small : full
Object.assign(BROKERS, BRIDGE_BROKERS)
const BRIDGE_SCENARIOS = bridgeScenarios(n)
const ALL = ['switchyard-memory', 'switchyard-level', 'aedes-memory', 'aedes-level', 'mosquitto']
const PLAIN = ['switchyard-memory', 'aedes-memory', 'mosquitto']
const OURS = ['switchyard-memory']
// MQTT 5 clients (publishers and subscribers): Switchyard, bare Aedes (the same vendored beta), Mosquitto
const V5 = ['switchyard-memory', 'aedes-memory', 'mosquitto']
// Issue 13: single node (memory, LevelDB) against one node on Redis, two nodes (publisher on one, subscriber
// on the other), and cluster.workers 2 in one `switchyard start` (docs/benchmarks.md#cluster-on-redis-issue-13)
const CLUSTER = ['switchyard-memory', 'switchyard-level', 'switchyard-redis', 'switchyard-redis-2nodes', 'switchyard-workers2']
// 64 bytes, where a topic alias saves something: 'bench/1/...' (the 3.1.1 scenarios' topic is 9 bytes)
const LONG_TOPIC = 'bench/{id}/site-0042/building-07/floor-3/room-311/sensor-0000123/t'
const LONG_FILTER = 'bench/+/site-0042/#'

/** Each scenario: which brokers, what load. `baseline` names the scenario its ratio to Switchyard is taken against. */
const SCENARIOS = [
  { id: 'qos0', title: 'QoS 0, 1 → 1', brokers: ALL, flow: { qos: 0, pubs: 1, subs: 1, perPub: n(200_000, 40_000) } },
  { id: 'qos1', title: 'QoS 1, 1 → 1', brokers: ALL, flow: { qos: 1, pubs: 1, subs: 1, perPub: n(50_000, 10_000) } },
  { id: 'qos2', title: 'QoS 2, 1 → 1', brokers: ALL, flow: { qos: 2, pubs: 1, subs: 1, perPub: n(20_000, 5_000) } },
  { id: 'fanin', title: 'fan-in, 50 → 1, QoS 0', brokers: PLAIN, flow: { qos: 0, pubs: 50, subs: 1, perPub: n(4_000, 1_000) } },
  { id: 'fanout', title: 'fan-out, 1 → 50, QoS 0', brokers: PLAIN, flow: { qos: 0, pubs: 1, subs: 50, perPub: n(4_000, 1_000) } },
  // MQTT 5: the ratio in the `baseline` column is Switchyard's own: v5 against 3.1.1, a long topic against
  // the short one, aliases against none. With aliases, the publisher sends the topic once (Topic Alias 1)
  // and the subscriber allows the broker 10 aliases (Topic Alias Maximum), which it may or may not use.
  { id: 'v5-qos0', title: 'MQTT 5, QoS 0, 1 → 1', brokers: V5, v5: true, baseline: 'qos0', flow: { protocolVersion: 5, qos: 0, pubs: 1, subs: 1, perPub: n(200_000, 40_000) } },
  { id: 'v5-qos1', title: 'MQTT 5, QoS 1, 1 → 1', brokers: V5, v5: true, baseline: 'qos1', flow: { protocolVersion: 5, qos: 1, pubs: 1, subs: 1, perPub: n(50_000, 10_000) } },
  { id: 'v5-qos0-long', title: 'MQTT 5, QoS 0, 64-byte topic', brokers: V5, v5: true, baseline: 'v5-qos0', flow: { protocolVersion: 5, qos: 0, pubs: 1, subs: 1, perPub: n(200_000, 40_000), topic: LONG_TOPIC, filter: LONG_FILTER } },
  { id: 'v5-qos0-alias', title: 'MQTT 5, QoS 0, 64-byte topic, topic aliases', brokers: V5, v5: true, baseline: 'v5-qos0-long', flow: { protocolVersion: 5, qos: 0, pubs: 1, subs: 1, perPub: n(200_000, 40_000), topic: LONG_TOPIC, filter: LONG_FILTER, alias: true } },
  { id: 'v5-qos1-long', title: 'MQTT 5, QoS 1, 64-byte topic', brokers: V5, v5: true, baseline: 'v5-qos1', flow: { protocolVersion: 5, qos: 1, pubs: 1, subs: 1, perPub: n(50_000, 10_000), topic: LONG_TOPIC, filter: LONG_FILTER } },
  { id: 'v5-qos1-alias', title: 'MQTT 5, QoS 1, 64-byte topic, topic aliases', brokers: V5, v5: true, baseline: 'v5-qos1-long', flow: { protocolVersion: 5, qos: 1, pubs: 1, subs: 1, perPub: n(50_000, 10_000), topic: LONG_TOPIC, filter: LONG_FILTER, alias: true } },
  { id: 'latency', title: 'latency at 5,000 msg/s, QoS 0', brokers: PLAIN, flow: { qos: 0, pubs: 1, subs: 1, rate: 5000, seconds: n(5, 2) } },
  { id: 'rule', title: 'one converter rule on every message', brokers: OURS, baseline: 'qos0', flow: { qos: 0, pubs: 1, subs: 1, perPub: n(60_000, 15_000), json: true, rules: { 'uplink.js': CONVERTER } } },
  // Diagnostics for the rule path (issue 16), not in a full run: the raw JSON topic with no rule, and with a rule that publishes nothing
  { id: 'qos0-json', title: 'QoS 0, the rule scenario\'s JSON messages, no rule', brokers: OURS, baseline: 'qos0', diagnostic: true, flow: { qos: 0, pubs: 1, subs: 1, perPub: n(60_000, 15_000), json: true, filter: 'tb/mqtt-integration-tutorial/sensors/+/temperature' } },
  { id: 'rule-drop', title: 'a rule on every message that publishes nothing (subscriber on the raw topic)', brokers: OURS, baseline: 'qos0-json', diagnostic: true, flow: { qos: 0, pubs: 1, subs: 1, perPub: n(60_000, 15_000), json: true, filter: 'tb/mqtt-integration-tutorial/sensors/+/temperature', rules: { 'uplink.js': DROPPER } } },
  { id: 'rule-latency', title: 'latency at 5,000 msg/s through the rule', brokers: OURS, flow: { qos: 0, pubs: 1, subs: 1, rate: 5000, seconds: n(5, 2), json: true, rules: { 'uplink.js': CONVERTER } } },
  { id: 'rules1000-none', title: '1,000 rules, none matching', brokers: OURS, baseline: 'qos0', flow: { qos: 0, pubs: 1, subs: 1, perPub: n(200_000, 40_000), rules: thousandRules, settleMs: 10_000 } },
  { id: 'rules1000-one', title: '1,000 rules, one matching each message', brokers: OURS, baseline: 'rule', flow: { qos: 0, pubs: 1, subs: 1, perPub: n(60_000, 15_000), json: true, rules: thousandRules, topic: 'site/537/SN-{id}/temperature', filter: 'out/#', settleMs: 10_000 } },
  { id: 'retained', title: `retained replay of ${quick ? '5,000' : '20,000'} messages to a new # subscriber`, brokers: ALL, retained: { count: n(20_000, 5_000), qos: 0 } },
  { id: 'idle', title: `${quick ? '2,000' : '10,000'} idle connections`, brokers: PLAIN, idle: n(10_000, 2_000) },
  { id: 'startup', title: 'start-up with 100 rules', brokers: OURS, startup: hundredRules },
  // Issue 15: what an open console costs the broker. Both with the admin listener; the tail is an SSE
  // client in this process reading GET /api/stream?filter=# as the console's Live page does
  { id: 'console-none', title: 'QoS 0, 1 → 1, admin listener, no console tail', brokers: OURS, flow: { qos: 0, pubs: 1, subs: 1, perPub: n(200_000, 40_000), admin: true } },
  { id: 'console-tail', title: 'QoS 0, 1 → 1, one console tail on #', brokers: OURS, baseline: 'console-none', flow: { qos: 0, pubs: 1, subs: 1, perPub: n(200_000, 40_000), admin: true, tail: '#' } },
  // Issue 13: the cost of the cluster, CPU counted over every node process and redis-server. A 30 s grace:
  // a QoS 0 flood into one node on Redis is delivered seconds late (not lost), and 3 s would count it lost
  // (BENCH_GRACE_MS sets the other scenarios' grace)
  { id: 'cluster-qos0', title: 'cluster, QoS 0, 1 → 1', brokers: CLUSTER, cluster: true, flow: { graceMs: 30_000, qos: 0, pubs: 1, subs: 1, perPub: n(100_000, 20_000) } },
  { id: 'cluster-qos1', title: 'cluster, QoS 1, 1 → 1', brokers: CLUSTER, cluster: true, flow: { graceMs: 30_000, qos: 1, pubs: 1, subs: 1, perPub: n(20_000, 5_000) } },
  // 8 publisher → subscriber pairs, each on its own topic: the load node:cluster can spread over the workers
  { id: 'cluster-pairs-qos0', title: 'cluster, QoS 0, 8 pairs 1 → 1', brokers: CLUSTER, cluster: true, flow: { graceMs: 30_000, qos: 0, pubs: 8, subs: 8, pairs: true, perPub: n(25_000, 5_000) } },
  { id: 'cluster-pairs-qos1', title: 'cluster, QoS 1, 8 pairs 1 → 1', brokers: CLUSTER, cluster: true, flow: { graceMs: 30_000, qos: 1, pubs: 8, subs: 8, pairs: true, perPub: n(5_000, 1_000) } },
  // the latency a client sees below saturation (the flood scenarios' p99 is queueing)
  { id: 'cluster-latency-qos0', title: 'cluster, latency at 5,000 msg/s, QoS 0', brokers: CLUSTER, cluster: true, flow: { qos: 0, pubs: 1, subs: 1, rate: 5000, seconds: n(5, 2) } },
  { id: 'cluster-latency-qos1', title: 'cluster, latency at 5,000 msg/s, QoS 1', brokers: CLUSTER, cluster: true, flow: { qos: 1, pubs: 1, subs: 1, rate: 5000, seconds: n(5, 2) } },
  { id: 'cluster-qos1-persistent', title: 'cluster, QoS 1, 1 → 1 persistent session', brokers: CLUSTER, cluster: true, flow: { graceMs: 30_000, qos: 1, pubs: 1, subs: 1, perPub: n(20_000, 5_000), persistent: true } },
  // Issue 14: through one bridge, Switchyard's against Mosquitto's (bench/bridge.js)
  ...BRIDGE_SCENARIOS
]

function ensureMosquitto () {
  if (hasMosquitto()) return true
  if (process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
    console.log('# Mosquitto is not installed: installing the Debian package (apt-get install mosquitto)')
    spawnSync('sh', ['-c', 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null 2>&1)'], { stdio: 'inherit' })
  }
  if (hasMosquitto()) return true
  console.log('# Mosquitto is not installed and could not be installed here: skipping it (apt-get install mosquitto)')
  return false
}

function startWorker (data) {
  const w = new Worker(WORKER, { workerData: data })
  const queue = []
  const waiters = []
  w.on('message', m => {
    if (m.type === 'error') console.error(`# worker error: ${m.message}`)
    const waiter = waiters.shift()
    if (waiter) waiter(m)
    else queue.push(m)
  })
  w.on('error', err => console.error(`# worker crashed: ${err.message}`))
  return { worker: w, next: () => queue.length ? Promise.resolve(queue.shift()) : new Promise(resolve => waiters.push(resolve)) }
}

function percentile (sorted, q) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

async function runFlow (brokerKey, flow) {
  const dir = tempDir()
  const port = await freePort()
  const adminPort = flow.admin ? await freePort() : undefined
  const broker = await BROKERS[brokerKey].start({ port, dir, rules: flow.rules, adminPort, bridge: flow.bridge })
  // Steady state: V8 keeps working on freshly made isolates for a while after start.
  if (flow.settleMs) await new Promise(resolve => setTimeout(resolve, flow.settleMs))
  const tail = flow.tail ? await openTail(adminPort, flow.tail) : undefined
  try {
    const payload = flow.json ? 'json' : 'binary'
    const topic = flow.topic ?? (flow.json ? 'tb/mqtt-integration-tutorial/sensors/SN-{id}/temperature' : 'bench/{id}/t')
    const filter = flow.filter ?? (flow.json ? 'devices/+/telemetry' : flow.pairs ? 'bench/{id}/t' : 'bench/+/t')
    const protocolVersion = flow.protocolVersion ?? 4
    // two cluster nodes: the subscriber on the second (broker.subPort), the publisher on the first
    const sub = startWorker({ role: 'subscribers', port: broker.subPort ?? port, protocolVersion, connections: flow.subs, filter, qos: flow.qos, payload, topicAliasMaximum: flow.alias ? 10 : 0, clean: !flow.persistent })
    ready(await sub.next(), sub)
    const pub = startWorker({ role: 'publishers', port, protocolVersion, connections: flow.pubs, topic, qos: flow.qos, perConnection: flow.perPub ?? 0, payload, rate: flow.rate ?? 0, seconds: flow.seconds ?? 0, alias: flow.alias ?? false })
    const { window } = ready(await pub.next(), pub, sub)
    // pairs: subscriber i takes publisher i's messages only
    if (!flow.rate) sub.worker.postMessage({ type: 'expect', perSubscriber: flow.pairs ? flow.perPub : flow.pubs * flow.perPub })
    // a cluster: every node process (with its workers) and redis-server (/proc/<pid>/stat before and after)
    const cpuAll = () => [broker.pid, ...(broker.extraPids ?? [])].reduce((sum, p) => sum + cpuMicros(p), 0)
    const cpu0 = cpuAll()
    // with rules: the broker process alone, the rest is its rule host; a bridge: the bridging broker alone
    const own0 = flow.rules || flow.bridge ? ownCpuMicros(broker.pid) : 0
    const redis0 = broker.redisPid ? cpuMicros(broker.redisPid) : 0
    pub.worker.postMessage({ type: 'go' })
    const sent = await pub.next()
    if (flow.rate) sub.worker.postMessage({ type: 'expect', perSubscriber: sent.sent })
    sub.worker.postMessage({ type: 'finish', graceMs: flow.graceMs ?? Number(process.env.BENCH_GRACE_MS ?? 3000) })
    const done = await sub.next()
    const cpu = cpuAll() - cpu0
    const ownCpu = flow.rules || flow.bridge ? ownCpuMicros(broker.pid) - own0 : undefined
    const redisCpu = broker.redisPid ? cpuMicros(broker.redisPid) - redis0 : undefined
    const peak = peakRss(broker.pid)
    pub.worker.postMessage({ type: 'close' })
    await pub.next()
    await Promise.all([pub.worker.terminate(), sub.worker.terminate()])
    const latencies = done.latencies.sort()
    const seconds = (done.last - done.first) / 1000
    return {
      window: flow.qos > 0 ? window : undefined,
      aliased: done.aliased,
      delivered: done.unique,
      msgPerSec: flow.rate ? done.unique / (flow.seconds) : done.unique / seconds,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      max: latencies[latencies.length - 1],
      lost: done.lost,
      duplicates: done.duplicates,
      outOfOrder: done.outOfOrder,
      cpuPerMsg: cpu / Math.max(1, done.received),
      ...(redisCpu === undefined ? {} : { redisCpuPerMsg: redisCpu / Math.max(1, done.received) }),
      ...(ownCpu === undefined ? {} : { brokerCpuPerMsg: ownCpu / Math.max(1, done.received) }),
      ...(tail ? { tail: { streamed: tail.messages, dropped: tail.dropped } } : {}),
      ...(flow.bridge ? { bridge: true } : {}),
      peakRss: peak
    }
  } finally {
    tail?.close()
    await broker.stop()
    removeDir(dir)
  }
}

/**
 * A console tail: GET /api/stream?filter=<filter> on the admin listener, read
 * as fast as this process can, counting the messages streamed and the last
 * `event: dropped` total. Resolves once the stream is subscribed (`event: ready`).
 */
async function openTail (port, filter) {
  const { default: http } = await import('node:http')
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/api/stream?filter=${encodeURIComponent(filter)}` }, res => {
      if (res.statusCode !== 200) return reject(new Error(`GET /api/stream: ${res.statusCode}`))
      const tail = { messages: 0, dropped: 0, close: () => req.destroy() }
      let rest = ''
      let ready = false
      res.setEncoding('utf8')
      res.on('data', chunk => {
        const text = rest + chunk
        const end = text.lastIndexOf('\n\n')
        if (end < 0) { rest = text; return }
        rest = text.slice(end + 2)
        for (const block of text.slice(0, end).split('\n\n')) {
          if (block.startsWith('event: message')) tail.messages++
          else if (block.startsWith('event: dropped')) tail.dropped = JSON.parse(block.slice(block.indexOf('data: ') + 6)).dropped
          else if (block.includes('event: ready') && !ready) { ready = true; resolve(tail) }
        }
      })
    })
    req.on('error', reject)
  })
}

/** A worker's first message; an error (a refused CONNECT, no topic aliases) ends the scenario. */
function ready (message, ...workers) {
  if (message.type !== 'error') return message
  for (const w of workers) w?.worker.terminate()
  throw new Error(message.message)
}

async function runIdle (brokerKey, connections) {
  const dir = tempDir()
  const port = await freePort()
  // Δ RSS / N after a full GC in the Node brokers (issue 16): without it the
  // figure is mostly the connect burst's garbage, and varies run to run
  const broker = await BROKERS[brokerKey].start({ port, dir, memprobe: true })
  try {
    const heapBefore = await collectGarbage(broker)
    const before = rss(broker.pid)
    const w = startWorker({ role: 'idle', port, connections })
    const result = await w.next()
    if (result.type !== 'connected') throw new Error(result.message ?? 'idle connections failed')
    await new Promise(resolve => setTimeout(resolve, 1000))
    const noGc = rss(broker.pid)
    const heapAfter = await collectGarbage(broker)
    const gc = heapAfter !== undefined
    const after = rss(broker.pid)
    w.worker.postMessage({ type: 'close' })
    await w.next()
    await w.worker.terminate()
    return { connectRate: result.connections / result.seconds, rssPerConnection: (after - before) / result.connections, rssPerConnectionNoGc: gc ? (noGc - before) / result.connections : undefined, heapPerConnection: gc ? (heapAfter.heapUsed - heapBefore.heapUsed) / result.connections : undefined, peakRss: peakRss(broker.pid) }
  } finally {
    await broker.stop()
    removeDir(dir)
  }
}

async function runRetained (brokerKey, { count, qos }) {
  const dir = tempDir()
  const port = await freePort()
  const broker = await BROKERS[brokerKey].start({ port, dir })
  try {
    const w = startWorker({ role: 'retained', port, count, qos })
    const result = await w.next()
    await w.worker.terminate()
    if (result.type !== 'done') throw new Error(result.message ?? 'retained replay failed')
    const sorted = result.seconds.slice().sort((a, b) => a - b)
    return { retainedCount: count, replaySeconds: sorted[Math.floor(sorted.length / 2)], replayMax: sorted.at(-1), storeSeconds: result.storeSeconds, peakRss: peakRss(broker.pid) }
  } finally {
    await broker.stop()
    removeDir(dir)
  }
}

async function runStartup (brokerKey, rules) {
  const times = { none: [], rules: [] }
  for (let i = 0; i < 3; i++) {
    for (const [key, set] of [['none', undefined], ['rules', rules]]) {
      const dir = tempDir()
      const broker = await BROKERS[brokerKey].start({ port: await freePort(), dir, rules: set })
      times[key].push(broker.startupMs)
      await broker.stop()
      removeDir(dir)
    }
  }
  const median = a => a.sort((x, y) => x - y)[1]
  return { startupMs: median(times.none), startupWithRulesMs: median(times.rules) }
}

const fmt = {
  rate: v => Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '-',
  ms: v => Number.isFinite(v) ? v.toFixed(2) : '-',
  us: v => Number.isFinite(v) ? v.toFixed(1) : '-',
  mb: v => Number.isFinite(v) ? (v / 1048576).toFixed(0) : '-',
  kb: v => Number.isFinite(v) ? (v / 1024).toFixed(1) : '-',
  ratio: v => Number.isFinite(v) ? v.toFixed(2) + '×' : '-'
}

async function main () {
  const withMosquitto = (!brokerArg || brokerArg.includes('mosquitto')) && ensureMosquitto()
  const results = {}
  const started = Date.now()
  console.log(`# switchyard bench${quick ? ' --quick' : ''}, ${new Date().toISOString()}, node ${process.version}, ${(await import('node:os')).cpus().length} cores`)
  for (const scenario of SCENARIOS) {
    if (only && !only.includes(scenario.id)) continue
    if (scenario.diagnostic && !only) continue // named in --only, or not run
    results[scenario.id] = {}
    // the second build joins every 3.1.1 scenario Switchyard runs, right after it
    const brokers = beforeDist && !scenario.v5 && !scenario.cluster ? scenario.brokers.flatMap(k => k === 'switchyard-memory' ? [k, 'switchyard-before'] : [k]) : scenario.brokers
    for (const key of brokers) {
      if (brokerArg && !brokerArg.includes(key) && !(key === 'switchyard-before' && brokerArg.includes('switchyard-memory'))) continue
      if (key === 'mosquitto' && !withMosquitto) continue
      if (key.startsWith('switchyard-redis') || key === 'switchyard-workers2') {
        if (!hasRedis()) { console.log(`${scenario.id.padEnd(15)} ${BROKERS[key].label.padEnd(20)} skipped: redis-server is not installed (apt-get install redis-server)`); continue }
      }
      let r
      try {
        if (scenario.idle) r = await runIdle(key, scenario.idle)
        else if (scenario.startup) r = await runStartup(key, scenario.startup)
        else if (scenario.retained) r = await runRetained(key, scenario.retained)
        else r = await runFlow(key, scenario.flow)
      } catch (err) {
        console.log(`${scenario.id.padEnd(15)} ${BROKERS[key].label.padEnd(20)} FAILED: ${err.message.split('\n')[0]}`)
        continue
      }
      results[scenario.id][key] = r
      console.log(`${scenario.id.padEnd(15)} ${BROKERS[key].label.padEnd(20)} ${line(r)}`)
    }
  }
  console.log(`# ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
  if (SCENARIOS.some(s => !s.v5 && !s.cluster && !s.bridge && results[s.id])) console.log(table(results))
  if (SCENARIOS.some(s => s.v5 && results[s.id])) console.log(`\n${v5Table(results)}`)
  if (beforeDist) console.log(`\n${beforeAfterTable(results)}`)
  if (SCENARIOS.some(s => s.cluster && results[s.id])) console.log(`\n${clusterTable(results)}`)
  if (BRIDGE_SCENARIOS.some(s => results[s.id])) console.log(`\n${bridgeTable(results, BRIDGE_SCENARIOS, fmt)}`)
}

/** The cluster on Redis against the single node (memory, LevelDB), scenario by scenario, same run. */
function clusterTable (results) {
  const rows = ['| cluster scenario | setup | msg/s | ÷ single (memory) | CPU µs/msg, all processes | of which redis-server | ÷ single (memory) | p99 ms | lost, dup, ooo |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
  for (const s of SCENARIOS.filter(x => x.cluster)) {
    const r = results[s.id]
    if (!r) continue
    const base = r['switchyard-memory']
    for (const key of CLUSTER) {
      const x = r[key]
      if (!x) continue
      rows.push(`| ${s.title} | ${BROKERS[key].label} | ${fmt.rate(x.msgPerSec)} | ${fmt.ratio(x.msgPerSec / base?.msgPerSec)} | ${fmt.us(x.cpuPerMsg)} | ${x.redisCpuPerMsg === undefined ? '-' : fmt.us(x.redisCpuPerMsg)} | ${fmt.ratio(x.cpuPerMsg / base?.cpuPerMsg)} | ${fmt.ms(x.p99)} | ${losses(x)} |`)
    }
  }
  return rows.join('\n')
}

function line (r) {
  if (r.connectRate !== undefined) return `${fmt.rate(r.connectRate)} conn/s, ${fmt.kb(r.rssPerConnection)} KiB RSS/conn${r.rssPerConnectionNoGc === undefined ? '' : ` after a GC (${fmt.kb(r.rssPerConnectionNoGc)} before it; V8 heap used ${fmt.kb(r.heapPerConnection)} KiB/conn)`}, peak RSS ${fmt.mb(r.peakRss)} MiB`
  if (r.replaySeconds !== undefined) return `replay ${fmt.ms(r.replaySeconds * 1000)} ms (median of 3, max ${fmt.ms(r.replayMax * 1000)} ms), ${fmt.rate(r.retainedCount / r.replaySeconds)} msg/s; storing them took ${fmt.ms(r.storeSeconds * 1000)} ms; peak RSS ${fmt.mb(r.peakRss)} MiB`
  if (r.startupMs !== undefined) return `start-up ${fmt.ms(r.startupMs)} ms, with 100 rules ${fmt.ms(r.startupWithRulesMs)} ms`
  return `${fmt.rate(r.msgPerSec)} msg/s, p50 ${fmt.ms(r.p50)} ms, p99 ${fmt.ms(r.p99)} ms, max ${fmt.ms(r.max)} ms, ` +
    `lost ${r.lost}, dup ${r.duplicates}, out-of-order ${r.outOfOrder}, CPU ${fmt.us(r.cpuPerMsg)} µs/msg, peak RSS ${fmt.mb(r.peakRss)} MiB` +
    (r.redisCpuPerMsg !== undefined ? ` (redis-server ${fmt.us(r.redisCpuPerMsg)})` : '') +
    (r.brokerCpuPerMsg !== undefined && r.bridge ? ` (bridging broker ${fmt.us(r.brokerCpuPerMsg)}, remote Mosquitto ${fmt.us(r.cpuPerMsg - r.brokerCpuPerMsg)})` : '') +
    (r.brokerCpuPerMsg !== undefined && !r.bridge ? ` (broker ${fmt.us(r.brokerCpuPerMsg)}, rule host ${fmt.us(r.cpuPerMsg - r.brokerCpuPerMsg)})` : '') +
    (r.window !== undefined ? `, window ${r.window}` : '') + (r.aliased ? `, ${fmt.rate(r.aliased)} delivered with a topic alias only` : '') +
    (r.tail ? `; the tail: ${fmt.rate(r.tail.streamed)} streamed, ${fmt.rate(r.tail.dropped)} dropped` : '')
}

/**
 * MQTT 5: Switchyard against its own baseline scenario (3.1.1, or v5 without
 * the change the row makes), bare Aedes and Mosquitto; then each broker's v5
 * against its own 3.1.1.
 */
function v5Table (results) {
  const rows = ['| MQTT 5 scenario | Switchyard msg/s | ÷ own baseline | ÷ Aedes | ÷ Mosquitto | Switchyard CPU µs/msg | ÷ own baseline | ÷ Aedes | ÷ Mosquitto | p99 ms (S / A / M) | lost, dup, ooo | delivered with an alias (S / A / M) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
  const aliased = r => r === undefined ? '-' : r.aliased ? fmt.rate(r.aliased) : '0'
  for (const s of SCENARIOS.filter(x => x.v5)) {
    const r = results[s.id]
    if (!r) continue
    const sy = r['switchyard-memory']
    const a = r['aedes-memory']
    const m = r.mosquitto
    const base = results[s.baseline]?.['switchyard-memory']
    rows.push(`| ${s.title} | ${fmt.rate(sy?.msgPerSec)} | ${fmt.ratio(sy?.msgPerSec / base?.msgPerSec)} of ${s.baseline} | ${fmt.ratio(sy?.msgPerSec / a?.msgPerSec)} | ${fmt.ratio(sy?.msgPerSec / m?.msgPerSec)} | ${fmt.us(sy?.cpuPerMsg)} | ${fmt.ratio(sy?.cpuPerMsg / base?.cpuPerMsg)} | ${fmt.ratio(sy?.cpuPerMsg / a?.cpuPerMsg)} | ${fmt.ratio(sy?.cpuPerMsg / m?.cpuPerMsg)} | ${fmt.ms(sy?.p99)} / ${fmt.ms(a?.p99)} / ${fmt.ms(m?.p99)} | ${losses(sy)}${othersLost(a, m)} | ${aliased(sy)} / ${aliased(a)} / ${aliased(m)} |`)
  }
  rows.push('', '| each broker, v5 ÷ 3.1.1 | Switchyard msg/s, CPU | Aedes msg/s, CPU | Mosquitto msg/s, CPU | QoS 1 window (S / A / M) |', '| --- | --- | --- | --- | --- |')
  for (const [v5, v3] of [['v5-qos0', 'qos0'], ['v5-qos1', 'qos1']]) {
    if (!results[v5] || !results[v3]) continue
    const cell = key => {
      const x = results[v5][key]
      const y = results[v3][key]
      return `${fmt.ratio(x?.msgPerSec / y?.msgPerSec)}, ${fmt.ratio(x?.cpuPerMsg / y?.cpuPerMsg)}`
    }
    const win = key => results[v5][key]?.window ?? '-'
    rows.push(`| ${v5} ÷ ${v3} | ${cell('switchyard-memory')} | ${cell('aedes-memory')} | ${cell('mosquitto')} | ${win('switchyard-memory')} / ${win('aedes-memory')} / ${win('mosquitto')} |`)
  }
  return rows.join('\n')
}

/** The second Switchyard build (--switchyard-dist) against this one, scenario by scenario, with bare Aedes as the yardstick of the run's noise. */
function beforeAfterTable (results) {
  const label = BROKERS['switchyard-before'].label
  const rows = [`| scenario | ${label} msg/s, CPU µs/msg | this build msg/s, CPU µs/msg | this ÷ ${label}: msg/s | CPU | bare Aedes msg/s (same run) |`, '| --- | --- | --- | --- | --- | --- |']
  for (const s of SCENARIOS) {
    const r = results[s.id]
    const before = r?.['switchyard-before']
    const after = r?.['switchyard-memory']
    if (!before || !after || before.msgPerSec === undefined) continue
    rows.push(`| ${s.title} | ${fmt.rate(before.msgPerSec)}, ${fmt.us(before.cpuPerMsg)} | ${fmt.rate(after.msgPerSec)}, ${fmt.us(after.cpuPerMsg)} | ${fmt.ratio(after.msgPerSec / before.msgPerSec)} | ${fmt.ratio(after.cpuPerMsg / before.cpuPerMsg)} | ${fmt.rate(r['aedes-memory']?.msgPerSec)} |`)
  }
  return rows.join('\n')
}

const losses = r => r ? `${r.lost}, ${r.duplicates}, ${r.outOfOrder}` : '-'
/** Bare Aedes's and Mosquitto's losses, when they had any. */
const othersLost = (a, m) => [a, m].some(x => x && (x.lost || x.duplicates || x.outOfOrder)) ? ` (A: ${losses(a)}; M: ${losses(m)})` : ''

function table (results) {
  const rows = ['| scenario | Switchyard msg/s | ÷ Aedes | ÷ Mosquitto | Switchyard CPU µs/msg | ÷ Aedes | ÷ Mosquitto | p99 ms (S / A / M) | lost, dup, ooo |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
  for (const s of SCENARIOS) {
    const r = results[s.id]
    if (!r || s.v5 || s.cluster || s.bridge) continue
    const sy = r['switchyard-memory']
    const a = r['aedes-memory']
    const m = r.mosquitto
    if (s.idle) {
      rows.push(`| ${s.title} | ${fmt.rate(sy?.connectRate)} conn/s | ${fmt.ratio(sy?.connectRate / a?.connectRate)} | ${fmt.ratio(sy?.connectRate / m?.connectRate)} | ${fmt.kb(sy?.rssPerConnection)} KiB RSS/conn | ${fmt.ratio(sy?.rssPerConnection / a?.rssPerConnection)} | ${fmt.ratio(sy?.rssPerConnection / m?.rssPerConnection)} | | |`)
      continue
    }
    if (s.retained) {
      const ms = x => fmt.ms(x?.replaySeconds * 1000)
      const sl = r['switchyard-level']
      const al = r['aedes-level']
      // ratios of times here: above 1× is slower
      rows.push(`| ${s.title} | ${ms(sy)} ms (level ${ms(sl)} ms) | time ${fmt.ratio(sy?.replaySeconds / a?.replaySeconds)} (level ${fmt.ratio(sl?.replaySeconds / al?.replaySeconds)}) | time ${fmt.ratio(sy?.replaySeconds / m?.replaySeconds)} (level ${fmt.ratio(sl?.replaySeconds / m?.replaySeconds)}) | | | | replay ms: ${ms(sy)} / ${ms(a)} / ${ms(m)} | |`)
      continue
    }
    if (s.startup) {
      rows.push(`| ${s.title} | start-up ${fmt.ms(sy?.startupWithRulesMs)} ms (${fmt.ms(sy?.startupMs)} ms without rules) | | | | | | | |`)
      continue
    }
    const base = s.baseline ? results[s.baseline]?.['switchyard-memory'] : undefined
    const vsA = s.baseline ? `${fmt.ratio(sy?.msgPerSec / base?.msgPerSec)} of ${s.baseline}` : fmt.ratio(sy?.msgPerSec / a?.msgPerSec)
    const cpuVsA = s.baseline ? `${fmt.ratio(sy?.cpuPerMsg / base?.cpuPerMsg)} of ${s.baseline}` : fmt.ratio(sy?.cpuPerMsg / a?.cpuPerMsg)
    rows.push(`| ${s.title} | ${fmt.rate(sy?.msgPerSec)} | ${vsA} | ${s.baseline ? '' : fmt.ratio(sy?.msgPerSec / m?.msgPerSec)} | ${fmt.us(sy?.cpuPerMsg)} | ${cpuVsA} | ${s.baseline ? '' : fmt.ratio(sy?.cpuPerMsg / m?.cpuPerMsg)} | ${fmt.ms(sy?.p99)} / ${fmt.ms(a?.p99)} / ${fmt.ms(m?.p99)} | ${losses(sy)}${othersLost(a, m)} |`)
  }
  const level = results.qos1?.['switchyard-level']
  const aLevel = results.qos1?.['aedes-level']
  if (level && aLevel) rows.push(`| QoS 1 with LevelDB (level / level) | ${fmt.rate(level.msgPerSec)} | ${fmt.ratio(level.msgPerSec / aLevel.msgPerSec)} | | ${fmt.us(level.cpuPerMsg)} | ${fmt.ratio(level.cpuPerMsg / aLevel.cpuPerMsg)} | | ${fmt.ms(level.p99)} / ${fmt.ms(aLevel.p99)} / - | ${level.lost}, ${level.duplicates}, ${level.outOfOrder} |`)
  return rows.join('\n')
}

main().then(() => process.exit(0), err => {
  console.error(err)
  process.exit(1)
})
