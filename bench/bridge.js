// Bridge scenarios (issue 14): npm run bench -- --only=bridge
//
// QoS 0 and QoS 1 through one bridge, each direction, against Mosquitto's own
// bridge in the same run. Two brokers per setup: the remote is a Mosquitto;
// the bridging broker is Switchyard (a "bridges" entry) or a second Mosquitto
// (a `connection` section). `in`: the publisher on the remote broker, the
// subscriber on the bridging one; `out`: the other way round. The load is
// run.js's (worker threads on raw sockets); CPU is counted over both broker
// processes, and for the bridging broker alone.
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { freePort, proc } from './lib/brokers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

export const BRIDGE_BROKERS = {
  'bridge-switchyard': { label: 'Switchyard bridge', start: o => bridged('switchyard', o) },
  'bridge-mosquitto': { label: 'Mosquitto bridge', start: o => bridged('mosquitto', o) }
}

const SETUPS = ['bridge-switchyard', 'bridge-mosquitto']

export const BRIDGE_IDS = ['bridge-in-qos0', 'bridge-in-qos1', 'bridge-out-qos0', 'bridge-out-qos1']

/** `n(full, quick)`: run.js's message counts. */
export function bridgeScenarios (n) {
  return [
    { id: 'bridge-in-qos0', title: 'bridge in, QoS 0 (remote → bridge → subscriber)', brokers: SETUPS, bridge: true, flow: { qos: 0, pubs: 1, subs: 1, perPub: n(100_000, 20_000), bridge: { direction: 'in', qos: 0 } } },
    { id: 'bridge-in-qos1', title: 'bridge in, QoS 1', brokers: SETUPS, bridge: true, flow: { qos: 1, pubs: 1, subs: 1, perPub: n(30_000, 5_000), bridge: { direction: 'in', qos: 1 } } },
    { id: 'bridge-out-qos0', title: 'bridge out, QoS 0 (publisher → bridge → remote)', brokers: SETUPS, bridge: true, flow: { qos: 0, pubs: 1, subs: 1, perPub: n(100_000, 20_000), bridge: { direction: 'out', qos: 0 } } },
    { id: 'bridge-out-qos1', title: 'bridge out, QoS 1', brokers: SETUPS, bridge: true, flow: { qos: 1, pubs: 1, subs: 1, perPub: n(30_000, 5_000), bridge: { direction: 'out', qos: 1 } } }
  ]
}

/**
 * The remote Mosquitto, then the bridging broker, then a probe message
 * through the bridge (the bridge is connected and subscribed). `o.port` is
 * where the publisher connects, `subPort` where the subscriber does.
 */
async function bridged (kind, o) {
  const { direction, qos } = o.bridge
  const remotePort = direction === 'in' ? o.port : await freePort()
  const localPort = direction === 'in' ? await freePort() : o.port
  const remoteDir = path.join(o.dir, 'remote')
  const localDir = path.join(o.dir, 'local')
  mkdirSync(remoteDir, { recursive: true })
  mkdirSync(localDir, { recursive: true })
  const remote = await mosquitto(remotePort, remoteDir, [])
  let local
  try {
    if (kind === 'switchyard') {
      const config = {
        listeners: [{ type: 'tcp', port: localPort }],
        persistence: { type: 'memory' },
        log: { level: 'warn' },
        rules: { dir: null },
        bridges: [{ name: 'bench', address: `mqtt://127.0.0.1:${remotePort}`, cleanSession: true, topics: [{ pattern: 'bench/#', direction, qos }] }]
      }
      const file = path.join(localDir, 'switchyard.json')
      writeFileSync(file, JSON.stringify(config))
      local = await proc(process.execPath, ['--no-node-snapshot', ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []), path.join(ROOT, 'bin/switchyard.js'), 'start', '--config', file], { port: localPort, dir: localDir })
    } else {
      // Mosquitto's bridge, with its defaults but for the queue bound (Switchyard's: 100,000)
      local = await mosquitto(localPort, localDir, ['connection bench', `address 127.0.0.1:${remotePort}`, `topic bench/# ${direction} ${qos}`, 'cleansession true', 'notifications false'])
    }
    await probe(direction === 'in' ? remotePort : localPort, direction === 'in' ? localPort : remotePort)
  } catch (err) {
    await local?.stop()
    await remote.stop()
    throw err
  }
  return {
    pid: local.pid,
    extraPids: [remote.pid],
    subPort: direction === 'in' ? localPort : remotePort,
    startupMs: local.startupMs,
    output: () => remote.output() + local.output(),
    async stop () {
      await local.stop()
      await remote.stop()
    }
  }
}

function mosquitto (port, dir, extra) {
  const conf = path.join(dir, 'mosquitto.conf')
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type error', 'max_connections -1', 'max_queued_messages 100000', ...extra].join('\n') + '\n')
  return proc('mosquitto', ['-c', conf], { port, dir })
}

/** Publishes bench/probe on `pubPort` until it arrives on `subPort` (15 s at most). */
async function probe (pubPort, subPort) {
  const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${subPort}`, { reconnectPeriod: 0 })
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${pubPort}`, { reconnectPeriod: 0 })
  try {
    await sub.subscribeAsync('bench/probe')
    const arrived = new Promise(resolve => sub.once('message', resolve))
    const deadline = Date.now() + 15_000
    for (let done = false; !done;) {
      if (Date.now() > deadline) throw new Error('no message crossed the bridge within 15 s')
      await pub.publishAsync('bench/probe', 'probe')
      done = await Promise.race([arrived.then(() => true), new Promise(resolve => setTimeout(() => resolve(false), 100))])
    }
  } finally {
    await Promise.all([sub.endAsync(true), pub.endAsync(true)])
  }
}

/** Switchyard's bridge against Mosquitto's, scenario by scenario, same run. */
export function bridgeTable (results, scenarios, fmt) {
  const rows = ['| bridge scenario | Switchyard msg/s | Mosquitto msg/s | ÷ Mosquitto | Switchyard CPU µs/msg: bridging broker (both brokers) | Mosquitto CPU µs/msg: bridging broker (both brokers) | ÷ Mosquitto (bridging broker) | p99 ms (S / M) | lost, dup, ooo (S / M) |', '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
  const losses = r => r ? `${r.lost}, ${r.duplicates}, ${r.outOfOrder}` : '-'
  for (const s of scenarios) {
    const r = results[s.id]
    if (!r) continue
    const sy = r['bridge-switchyard']
    const m = r['bridge-mosquitto']
    const cpu = x => x ? `${fmt.us(x.brokerCpuPerMsg)} (${fmt.us(x.cpuPerMsg)})` : '-'
    rows.push(`| ${s.title} | ${fmt.rate(sy?.msgPerSec)} | ${fmt.rate(m?.msgPerSec)} | ${fmt.ratio(sy?.msgPerSec / m?.msgPerSec)} | ${cpu(sy)} | ${cpu(m)} | ${fmt.ratio(sy?.brokerCpuPerMsg / m?.brokerCpuPerMsg)} | ${fmt.ms(sy?.p99)} / ${fmt.ms(m?.p99)} | ${losses(sy)} / ${losses(m)} |`)
  }
  return rows.join('\n')
}
