// Connection churn against one broker process, and what its memory does.
//
// node bench/churn.js [--broker=switchyard-level] [--cycles=5000] [--concurrency=10]
//   [--settle=40] [--env=MALLOC_ARENA_MAX=2 ...] [--config='{"sys":{"interval":0}}']
//   [--healthz=1000] [--retained=0] [--entry=path/to/cli.js] [--gc] [--mallocStats] [--keep]
//
// brokers: switchyard-level (default), switchyard-memory, aedes-level, aedes-memory
//
// Each cycle is one MQTT.js client (several at once, loopback only): connect,
// subscribe QoS 1 to its own topic, publish QoS 1 to it and wait for both the
// PUBACK and the message, then disconnect. Some disconnects are ungraceful
// (the socket is destroyed, no DISCONNECT), some clients have a will, and some
// sessions are persistent (clean=false, ids from a small pool, so the store
// is bounded). One clean subscriber listens to the wills.
//
// Prints the broker's RSS at the start, its peak, and after settling, with
// V8 heap used and external (from bench/lib/memprobe.cjs inside the broker),
// and, for LevelDB, the keys left in the store by prefix. The last line is
// `RESULT {json}` for scripts (test/adversarial/churn.test.ts).
// Bounded: --cycles, and a hard deadline of --timeout seconds (default 600).
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const MEMPROBE = fileURLToPath(new URL('./lib/memprobe.cjs', import.meta.url))
const MiB = 1024 * 1024

export const DEFAULTS = {
  broker: 'switchyard-level',
  cycles: 5000,
  concurrency: 10,
  settle: 40,
  ungraceful: 0.3,
  wills: 0.3,
  persistent: 0.2,
  persistentPool: 50,
  timeout: 600,
  healthz: 0,
  retained: 0,
  gc: false,
  keep: false,
  mallocStats: false,
  env: {},
  config: {},
  entry: path.join(ROOT, 'bin/switchyard.js'),
  log: () => {}
}

/** Runs the churn; resolves with the figures (bytes). */
export async function runChurn (options = {}) {
  const o = { ...DEFAULTS, ...options }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-churn-'))
  const port = await freePort()
  const adminPort = o.healthz > 0 ? await freePort() : 0
  const broker = await startBroker(o, dir, port, adminPort)
  const deadline = Date.now() + o.timeout * 1000
  let stopHealth = () => {}
  try {
    if (o.retained > 0) await seedRetained(`mqtt://127.0.0.1:${port}`, o.retained)
    await sleep(2000)
    const start = await broker.memory()
    o.log(`start: rss ${mib(start.rss)} MiB, heap used ${mib(start.heapUsed)} MiB, external ${mib(start.external)} MiB`)
    let peak = start.rss
    const sampler = setInterval(() => { peak = Math.max(peak, rssOf(broker.pid)) }, 200)
    if (o.healthz > 0) stopHealth = pollHealth(adminPort, o.healthz)

    const startedAt = Date.now()
    const stats = await churn(o, port, deadline)
    const churnSeconds = (Date.now() - startedAt) / 1000
    o.log(`churn: ${stats.cycles} cycles in ${churnSeconds.toFixed(1)} s, ${stats.errors} errors, ${stats.wills} wills received`)
    const afterChurn = rssOf(broker.pid)
    stopHealth()

    await sleep(o.settle * 1000)
    clearInterval(sampler)
    const settled = await broker.memory()
    peak = Math.max(peak, settled.rss)
    const result = {
      broker: o.broker,
      cycles: stats.cycles,
      errors: stats.errors,
      churnSeconds,
      settleSeconds: o.settle,
      env: o.env,
      rssStart: start.rss,
      rssPeak: peak,
      rssAfterChurn: afterChurn,
      rssSettled: settled.rss,
      rssGrowth: settled.rss - start.rss,
      rssAnonSettled: settled.rssAnon,
      heapUsed: settled.heapUsed,
      external: settled.external,
      heapTotal: settled.heapTotal,
      heapTotalStart: start.heapTotal,
      spacesStart: start.spaces,
      spacesSettled: settled.spaces,
      newSpace: settled.spaces?.new_space,
      newSpaceAfterGc: settled.afterGc?.spaces?.new_space,
      heapUsedAfterGc: settled.afterGc?.heapUsed,
      rssAfterGc: settled.rssAfterGc,
      malloc: o.mallocStats ? await broker.mallocStats() : undefined,
      dbBytes: o.broker.endsWith('-level') ? du(path.join(dir, 'data')) : 0,
      keys: undefined
    }
    await broker.stop()
    if (o.broker.endsWith('-level')) result.keys = await countKeys(path.join(dir, 'data'))
    return result
  } finally {
    stopHealth()
    await broker.stop()
    if (!o.keep) rmSync(dir, { recursive: true, force: true })
  }
}

async function churn (o, port, deadline) {
  const stats = { cycles: 0, errors: 0, wills: 0 }
  const url = `mqtt://127.0.0.1:${port}`
  const monitor = await connect(url, { clientId: 'churn-will-monitor', clean: true })
  monitor.on('message', () => { stats.wills++ })
  await monitor.subscribeAsync('churn/will/#', { qos: 1 })
  let next = 0
  // deterministic: cycle i's choices depend only on i
  const pick = (i, salt, fraction) => hash(i * 8 + salt) < fraction
  const worker = async (w) => {
    while (next < o.cycles && Date.now() < deadline) {
      const i = next++
      const persistent = pick(i, 1, o.persistent)
      // a pool id is never used by two workers at once: the pool is split by worker
      const id = persistent ? `churn-p-${w}-${i % Math.max(1, Math.floor(o.persistentPool / o.concurrency))}` : `churn-${i}`
      try {
        await cycle(url, id, { persistent, will: pick(i, 2, o.wills), ungraceful: pick(i, 3, o.ungraceful) })
        stats.cycles++
      } catch (err) {
        stats.errors++
        if (stats.errors <= 5) o.log(`cycle ${i} (${id}): ${err.message}`)
      }
      if (stats.cycles % 1000 === 0 && stats.cycles > 0) o.log(`  ${stats.cycles} cycles`)
    }
  }
  await Promise.all(Array.from({ length: o.concurrency }, (_, w) => worker(w)))
  await monitor.endAsync()
  return stats
}

// Retained messages that no churn client subscribes to, but which a store may scan on every SUBSCRIBE.
async function seedRetained (url, n) {
  const client = await connect(url, { clientId: 'churn-seed', clean: true })
  for (let k = 0; k < n; k++) await client.publishAsync(`churn-retained/${k}`, Buffer.alloc(100, 0x62), { qos: 1, retain: true })
  await client.endAsync()
}

async function cycle (url, clientId, { persistent, will, ungraceful }) {
  const topic = `churn/${clientId}`
  const client = await connect(url, {
    clientId,
    clean: !persistent,
    will: will ? { topic: `churn/will/${clientId}`, payload: Buffer.from('gone'), qos: 1, retain: false } : undefined
  })
  try {
    await client.subscribeAsync(topic, { qos: 1 })
    const received = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('message not received in 10 s')), 10_000)
      client.on('message', (t) => { if (t === topic) { clearTimeout(timer); resolve() } })
    })
    await client.publishAsync(topic, Buffer.alloc(64, 0x61), { qos: 1 })
    await received
  } finally {
    if (ungraceful) {
      client.stream.destroy()
      await client.endAsync(true)
    } else {
      await client.endAsync()
    }
  }
}

function connect (url, options) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, keepalive: 30, ...options })
    client.once('connect', () => resolve(client))
    client.once('error', err => { client.end(true); reject(err) })
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
}

function pollHealth (port, everyMs) {
  const timer = setInterval(() => {
    fetch(`http://127.0.0.1:${port}/healthz`).then(r => r.text()).catch(() => {})
  }, everyMs)
  return () => clearInterval(timer)
}

async function startBroker (o, dir, port, adminPort) {
  const nodeArgs = ['--no-node-snapshot', '--require', MEMPROBE]
  if (o.gc) nodeArgs.push('--expose-gc')
  let args
  if (o.broker.startsWith('switchyard-')) {
    const config = {
      listeners: [{ type: 'tcp', host: '127.0.0.1', port }],
      persistence: o.broker === 'switchyard-level' ? { type: 'level', path: path.join(dir, 'data') } : { type: 'memory' },
      log: { level: 'warn' },
      ...(adminPort ? { admin: { host: '127.0.0.1', port: adminPort } } : {}),
      ...o.config
    }
    mkdirSync(path.join(dir, 'rules'), { recursive: true })
    config.rules ??= { dir: path.join(dir, 'rules') }
    writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify(config))
    args = [...nodeArgs, o.entry, 'start', '--config', path.join(dir, 'switchyard.json')]
  } else if (o.broker === 'aedes-level' || o.broker === 'aedes-memory') {
    args = [...nodeArgs, path.join(ROOT, 'bench/aedes-server.js'), String(port), o.broker.slice(6), path.join(dir, 'data')]
  } else {
    throw new Error(`unknown broker ${o.broker}`)
  }
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env } })
  let output = ''
  let stderrBuf = ''
  const probes = []
  child.stdout.on('data', d => { output += d; if (output.length > 1e6) output = output.slice(-1e5) })
  child.stderr.on('data', d => {
    stderrBuf += d
    let nl
    while ((nl = stderrBuf.indexOf('\n')) >= 0) {
      const line = stderrBuf.slice(0, nl)
      stderrBuf = stderrBuf.slice(nl + 1)
      if (line.startsWith('MEMPROBE ')) probes.shift()?.(JSON.parse(line.slice(9)))
      else output += line + '\n'
    }
  })
  const exited = new Promise(resolve => child.once('exit', resolve))
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`broker exited: ${output}`)
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`broker did not start: ${output}`) }
    if (await accepts(port)) break
    await sleep(20)
  }
  let stopped
  return {
    pid: child.pid,
    async memory () {
      const probe = new Promise((resolve, reject) => {
        probes.push(resolve)
        setTimeout(() => reject(new Error('no MEMPROBE answer')), 10_000)
      })
      child.kill('SIGUSR2')
      const rss = rssOf(child.pid)
      const m = await probe
      return { rss, rssAnon: statusField(child.pid, 'RssAnon'), spaces: m.before.spaces, heapUsed: m.before.heapUsed, heapTotal: m.before.heapTotal, external: m.before.external, afterGc: m.afterGc, rssAfterGc: m.afterGc ? rssOf(child.pid) : undefined }
    },
    /** glibc's own totals, from malloc_stats() called in the broker through gdb (when gdb is there). */
    async mallocStats () {
      const mark = output.length
      const gdb = spawn('gdb', ['-p', String(child.pid), '-batch', '-ex', 'call (void)malloc_stats()'], { stdio: 'ignore' })
      const ok = await new Promise(resolve => { gdb.once('exit', code => resolve(code === 0)); gdb.once('error', () => resolve(false)) })
      await sleep(200)
      let text = output.slice(mark)
      // what glibc holds free: malloc_trim(0) gives it back, and RSS shows how much was resident
      const before = rssOf(child.pid)
      const trim = spawn('gdb', ['-p', String(child.pid), '-batch', '-ex', 'call (int)malloc_trim(0)'], { stdio: 'ignore' })
      await new Promise(resolve => { trim.once('exit', resolve); trim.once('error', resolve) })
      const trimmed = before - rssOf(child.pid)
      text += ''
      const total = /Total \(incl. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)/.exec(text)
      const arenas = (text.match(/^Arena \d+:/gm) ?? []).length
      void ok
      return total ? { systemBytes: Number(total[1]), inUseBytes: Number(total[2]), arenas, trimmed } : undefined
    },
    stop () {
      stopped ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(timer)
      })()
      return stopped
    }
  }
}

/** Keys in a LevelDB directory, by prefix (the part before the first ':'). */
async function countKeys (dir) {
  const { Level } = await import('level')
  const db = new Level(dir, { valueEncoding: 'buffer' })
  await db.open()
  const counts = {}
  try {
    for await (const key of db.keys()) {
      const prefix = key.includes(':') ? key.slice(0, key.indexOf(':')) : key
      counts[prefix] = (counts[prefix] ?? 0) + 1
    }
  } finally {
    await db.close()
  }
  return counts
}

function rssOf (pid) { return statusField(pid, 'VmRSS') }

function statusField (pid, key) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find(l => l.startsWith(key + ':'))
    return Number(line.split(/\s+/)[1]) * 1024
  } catch { return 0 }
}

function du (dir) {
  try {
    return readdirSync(dir).reduce((sum, f) => sum + statSync(path.join(dir, f)).size, 0)
  } catch { return 0 }
}

async function freePort () {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  const { port } = server.address()
  await new Promise(resolve => server.close(resolve))
  return port
}

function accepts (port) {
  return new Promise(resolve => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

// mulberry32's mix: a number in [0, 1) from an integer
function hash (n) {
  let t = (n + 0x6D2B79F5) | 0
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const mib = bytes => (bytes / MiB).toFixed(1)

export function format (r) {
  const keys = r.keys ? ' keys ' + JSON.stringify(r.keys) : ''
  return `${r.broker}${Object.keys(r.env).length ? ' ' + JSON.stringify(r.env) : ''}: ${r.cycles} cycles (${r.errors} errors) in ${r.churnSeconds.toFixed(1)} s; ` +
    `RSS start ${mib(r.rssStart)} MiB, peak ${mib(r.rssPeak)} MiB, after churn ${mib(r.rssAfterChurn)} MiB, ` +
    `after ${r.settleSeconds} s ${mib(r.rssSettled)} MiB (${r.rssGrowth >= 0 ? '+' : ''}${mib(r.rssGrowth)} MiB); ` +
    `heap used ${mib(r.heapUsed)} MiB of ${mib(r.heapTotal)} MiB (${mib(r.heapTotalStart)} MiB at the start; new space ${mib(r.newSpace)} MiB), external ${mib(r.external)} MiB` +
    (r.heapUsedAfterGc !== undefined ? `; after a full GC heap used ${mib(r.heapUsedAfterGc)} MiB, RSS ${mib(r.rssAfterGc)} MiB` : '') +
    (r.malloc ? `; malloc: ${r.malloc.arenas} arenas, ${mib(r.malloc.systemBytes)} MiB from the system, ${mib(r.malloc.inUseBytes)} MiB in use, malloc_trim(0) gave back ${mib(r.malloc.trimmed)} MiB of RSS` : '') +
    (r.dbBytes ? `; LevelDB ${mib(r.dbBytes)} MiB on disk` : '') + keys
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const o = { log: line => console.log(line), env: {}, config: {} }
  for (const arg of process.argv.slice(2)) {
    const [k, ...rest] = arg.replace(/^--/, '').split('=')
    const v = rest.join('=')
    if (k === 'env') { const [name, ...value] = v.split('='); o.env[name] = value.join('=') } else if (k === 'config') o.config = JSON.parse(v)
    else if (k === 'broker' || k === 'entry') o[k] = k === 'entry' ? path.resolve(v) : v
    else if (k === 'gc' || k === 'keep' || k === 'mallocStats') o[k] = true
    else if (k in DEFAULTS) o[k] = Number(v)
    else { console.error(`unknown option --${k}`); process.exit(2) }
  }
  const result = await runChurn(o)
  console.log(format(result))
  console.log('RESULT ' + JSON.stringify(result))
}
