// The brokers under test, each started in its own process, and what /proc
// says about their CPU time and memory.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100

export function hasMosquitto () {
  return spawnSync('sh', ['-c', 'command -v mosquitto']).status === 0
}

export async function freePort () {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  const { port } = server.address()
  await new Promise(resolve => server.close(resolve))
  return port
}

/** Definitions: how to start each broker. `rules` is a map of file name to source (Switchyard only). */
export const BROKERS = {
  'switchyard-memory': { label: 'Switchyard (memory)', start: (o) => switchyard('memory', o) },
  'switchyard-level': { label: 'Switchyard (level)', start: (o) => switchyard('level', o) },
  'aedes-memory': { label: 'Aedes (memory)', start: (o) => node([path.join(ROOT, 'bench/aedes-server.js'), String(o.port), 'memory'], o) },
  'aedes-level': { label: 'Aedes (level)', start: (o) => node([path.join(ROOT, 'bench/aedes-server.js'), String(o.port), 'level', path.join(o.dir, 'data')], o) },
  mosquitto: { label: 'Mosquitto', start: (o) => mosquitto(o) },
  // Issue 13, a cluster on Redis (docs/cluster.md): each starts a redis-server of its own (AOF on, everysec, as
  // docs/cluster.md asks), whose CPU is counted with the broker's (`extraPids`).
  'switchyard-redis': { label: 'Switchyard (1 node, Redis)', start: (o) => switchyardCluster(o, { nodes: 1 }) },
  // the subscriber on the second node (`subPort`): every message crosses nodes through Redis
  'switchyard-redis-2nodes': { label: 'Switchyard (2 nodes, Redis)', start: (o) => switchyardCluster(o, { nodes: 2 }) },
  // one `switchyard start` with cluster.workers 2: node:cluster shares the port, each connection goes to either worker
  'switchyard-workers2': { label: 'Switchyard (workers: 2)', start: (o) => switchyardCluster(o, { nodes: 1, workers: 2 }) }
}

export function hasRedis () {
  return spawnSync('sh', ['-c', `command -v ${REDIS_SERVER}`]).status === 0
}

const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server'

/** A redis-server on a free port in o.dir, then `nodes` Switchyard processes on it (each with `workers`). */
async function switchyardCluster (o, { nodes, workers = 1 }) {
  const redisPort = await freePort()
  const redisDir = path.join(o.dir, 'redis')
  mkdirSync(redisDir, { recursive: true })
  const redis = await proc(REDIS_SERVER, ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', redisDir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--daemonize', 'no', '--logfile', ''], { ...o, port: redisPort }, null)
  const started = []
  try {
    for (let i = 0; i < nodes; i++) {
      const port = i === 0 ? o.port : await freePort()
      const dir = path.join(o.dir, `node-${i}`)
      mkdirSync(dir, { recursive: true })
      const config = {
        listeners: [{ type: 'tcp', port }],
        log: { level: 'warn' },
        limits: { maxConnections: 19_000 },
        rules: { dir: null },
        cluster: { redis: `redis://127.0.0.1:${redisPort}/0`, nodeId: `bench-${i}`, workers }
      }
      const file = path.join(dir, 'switchyard.json')
      writeFileSync(file, JSON.stringify(config))
      // the pid file is written once every worker listens (with workers, the port accepts as soon as the first does)
      const pidFile = path.join(dir, 'switchyard.pid')
      const node = await proc(process.execPath, ['--no-node-snapshot', path.join(ROOT, 'bin/switchyard.js'), 'start', '--config', file, '--pid-file', pidFile], { ...o, dir, port }, null)
      node.port = port
      started.push(node)
      await until(() => existsSync(pidFile), 15_000)
    }
  } catch (err) {
    for (const n of started) await n.stop()
    await redis.stop()
    throw err
  }
  const [first, second] = started
  return {
    pid: first.pid,
    // the second node, where the subscriber connects
    ...(second ? { subPort: second.port } : {}),
    extraPids: [...started.slice(1).map(n => n.pid), redis.pid],
    redisPid: redis.pid,
    startupMs: first.startupMs,
    output: () => started.map(n => n.output()).join(''),
    async stop () {
      for (const n of started) await n.stop()
      await redis.stop()
      // Redis closes a pub/sub connection whose unsent output passes client-output-buffer-limit
      // (pubsub 32mb 8mb 60 by default): what that node had not read yet is lost
      const cut = redis.output().split('\n').filter(l => l.includes('output buffer limits')).length
      if (cut > 0) console.log(`# redis-server closed ${cut} client connection(s) over client-output-buffer-limit`)
    }
  }
}

async function until (check, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the pid file')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/**
 * Adds another Switchyard build as broker `key`: `dist` is its compiled
 * dist/ folder, started through the bin/switchyard.js beside it (so that it
 * resolves its own node_modules). Memory persistence, like switchyard-memory.
 */
export function addSwitchyardBuild (key, label, dist) {
  const bin = path.join(dist, '..', 'bin', 'switchyard.js')
  BROKERS[key] = { label, start: (o) => switchyard('memory', o, bin) }
}

// BENCH_SWITCHYARD_BIN: another entry point taking `start --config <file>` (a profiling wrapper)
function switchyard (persistence, o, bin = process.env.BENCH_SWITCHYARD_BIN ?? path.join(ROOT, 'bin/switchyard.js')) {
  const rulesDir = path.join(o.dir, 'rules')
  mkdirSync(rulesDir, { recursive: true })
  for (const [name, source] of Object.entries(o.rules ?? {})) writeFileSync(path.join(rulesDir, name), source)
  const config = {
    listeners: [{ type: 'tcp', port: o.port }],
    persistence: persistence === 'level' ? { type: 'level', path: path.join(o.dir, 'data') } : { type: 'memory' },
    // warn: the per-connection info lines would cost the 10k-connection scenario
    log: { level: 'warn' },
    limits: { maxConnections: 19_000 },
    rules: { dir: rulesDir },
    // the console scenarios (issue 15): an anonymous admin listener on loopback, for GET /api/stream
    ...(o.adminPort ? { admin: { host: '127.0.0.1', port: o.adminPort } } : {})
  }
  const file = path.join(o.dir, 'switchyard.json')
  writeFileSync(file, JSON.stringify(config))
  // ready when the port accepts: at log level warn there is no "listening" line
  return node([bin, 'start', '--config', file], o, null)
}

function mosquitto (o) {
  const conf = path.join(o.dir, 'mosquitto.conf')
  writeFileSync(conf, `listener ${o.port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nmax_connections -1\n`)
  return proc('mosquitto', ['-c', conf], o, null)
}

function node (args, o, ready = line => line.includes('listening on')) {
  // BENCH_NODE_ARGS (e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof'): for profiling the brokers
  const extra = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []
  // o.memprobe: collectGarbage() can ask it for a full GC (bench/lib/memprobe.cjs)
  const probe = o.memprobe ? ['--expose-gc', '--require', MEMPROBE] : []
  return proc(process.execPath, ['--no-node-snapshot', ...probe, ...extra, ...args], o, ready)
}

const MEMPROBE = fileURLToPath(new URL('./memprobe.cjs', import.meta.url))

/**
 * A full GC in a broker started with `memprobe: true` (a Node one), so that
 * RSS is read without the garbage of what just happened. Resolves with
 * process.memoryUsage() after it, or undefined for a broker without the
 * probe (Mosquitto: no GC to wait for).
 */
export async function collectGarbage (broker) {
  if (!broker.memprobe) return undefined
  const seen = broker.output().split('MEMPROBE ').length
  process.kill(broker.pid, 'SIGUSR2')
  const deadline = Date.now() + 10_000
  let parts
  while ((parts = broker.output().split('MEMPROBE ')).length === seen) {
    if (Date.now() > deadline) throw new Error('no MEMPROBE answer from the broker')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  const probe = JSON.parse(parts.at(-1).split('\n')[0])
  return probe.afterGc ?? probe.before
}

// Brokers still running, so that an interrupted bench (Ctrl-C, a timeout)
// does not leave them behind.
const running = new Set()
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of running) child.kill('SIGKILL')
    process.exit(130)
  })
}

/**
 * Starts a process and resolves once it accepts TCP connections on o.port
 * (and printed `ready`, if given); killed if the bench is interrupted.
 */
export async function proc (cmd, args, o, ready) {
  const child = spawn(cmd, args, { cwd: o.dir, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  child.once('exit', () => running.delete(child))
  let output = ''
  child.stdout.on('data', d => { output += d })
  child.stderr.on('data', d => { output += d })
  const startedAt = performance.now()
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited: ${output}`)
    if (Date.now() > deadline) throw new Error(`${cmd} did not start: ${output}`)
    if ((!ready || output.split('\n').some(ready)) && await accepts(o.port)) break
    await new Promise(resolve => setTimeout(resolve, 5))
  }
  return {
    pid: child.pid,
    memprobe: Boolean(o.memprobe) && cmd === process.execPath,
    startupMs: performance.now() - startedAt,
    output: () => output,
    async stop () {
      if (child.exitCode !== null) return
      child.kill('SIGTERM')
      await Promise.race([new Promise(resolve => child.once('exit', resolve)), new Promise(resolve => setTimeout(resolve, 5000))])
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  }
}

function accepts (port) {
  return new Promise(resolve => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

/** CPU time in µs of a process and its children (the rule host), from /proc. */
export function cpuMicros (pid) {
  let total = 0
  for (const p of [pid, ...children(pid)]) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      total += (Number(fields[11]) + Number(fields[12])) * 1e6 / CLK_TCK // utime, stime
    } catch { /* exited */ }
  }
  return total
}

/** CPU time in µs of a process alone, without its children (the broker without its rule host). */
export function ownCpuMicros (pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1e6 / CLK_TCK
  } catch { return 0 }
}

/** Peak resident memory in bytes (VmHWM) of a process and its children. */
export function peakRss (pid) {
  return [pid, ...children(pid)].reduce((sum, p) => sum + status(p, 'VmHWM'), 0)
}

export function rss (pid) {
  return [pid, ...children(pid)].reduce((sum, p) => sum + status(p, 'VmRSS'), 0)
}

function status (pid, key) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find(l => l.startsWith(key + ':'))
    return Number(line.split(/\s+/)[1]) * 1024
  } catch { return 0 }
}

function children (pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap(t => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number))
  } catch { return [] }
}

export function tempDir () {
  return mkdtempSync(path.join(os.tmpdir(), 'switchyard-bench-'))
}

export function removeDir (dir) {
  rmSync(dir, { recursive: true, force: true })
}
