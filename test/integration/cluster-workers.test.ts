/*
 * Issue 13: `cluster.workers: N` makes `switchyard start` run N nodes on this
 * machine (src/cli/workers.ts), sharing the listeners through node:cluster.
 * The real CLI (bin/switchyard.js) with two workers on a real redis-server
 * (helpers/redis.ts), real MQTT.js clients over TCP and WebSocket.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import type { MqttClient } from 'mqtt'
import { describe, expect, onTestFinished, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { runCli, startCli, type CliProcess } from '../helpers/cli.js'
import { connect, inbox } from '../helpers/client.js'
import { useRedis } from '../helpers/redis.js'
import { until } from '../helpers/wait.js'

const redis = useRedis()

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

function portIsFree (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** Running, and not a zombie. */
function alive (pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z'
  } catch {
    return false
  }
}

interface Workers {
  cli: CliProcess
  tcp: number
  ws: number
  admin: number
  pidFile: string
  /** The pid of each worker's latest run, from the primary's 'worker started' lines. */
  pids(): Map<number, number>
  /** Which worker each client id last connected to, from the workers' 'client connected' lines. */
  workerOf(clientId: string): number | undefined
  /** How many times worker `index` has reported ready. */
  readyCount(index: number): number
}

async function startWorkers (): Promise<Workers> {
  const dir = tempDir()
  const [tcp, ws, admin] = [await freePort(), await freePort(), await freePort()]
  const pidFile = path.join(dir, 'switchyard.pid')
  const cli = await startCli(dir, {
    listeners: [{ type: 'tcp', port: tcp }, { type: 'ws', port: ws }],
    admin: { port: admin },
    cluster: { redis: redis.url, nodeId: 'box', heartbeatMs: 1000, workers: 2 }
  }, ['--pid-file', pidFile])
  const lines = (msg: string) => cli.logs.filter(l => l.msg === msg)
  const workers: Workers = {
    cli,
    tcp,
    ws,
    admin,
    pidFile,
    pids: () => new Map(lines('worker started').map(l => [l.worker as number, l.pid as number])),
    workerOf: clientId => lines('client connected').filter(l => l.clientId === clientId).at(-1)?.worker as number | undefined,
    readyCount: index => lines('worker ready').filter(l => l.worker === index).length
  }
  onTestFinished(() => {
    for (const pid of workers.pids().values()) if (alive(pid)) process.kill(pid, 'SIGKILL')
  })
  await until(() => workers.readyCount(0) === 1 && workers.readyCount(1) === 1, 'both workers ready', 15_000)
  await until(() => existsSync(pidFile), 'the pid file')
  return workers
}

/** Waits until the logs say which worker each client is on. */
async function placement (w: Workers, clientIds: string[]): Promise<Map<string, number>> {
  await until(() => clientIds.every(id => w.workerOf(id) !== undefined), 'the clients\' "client connected" lines')
  return new Map(clientIds.map(id => [id, w.workerOf(id)!]))
}

describe('cluster.workers: 2 under `switchyard start`', () => {
  test('clients over TCP and WebSocket land on both workers, and QoS 1 messages cross between them with no loss', async () => {
    const w = await startWorkers()
    // the primary's pid, not a worker's; written just after the last worker's 'worker ready'
    await until(() => existsSync(w.pidFile), 'the pid file')
    expect(readFileSync(w.pidFile, 'utf8')).toBe(`${w.cli.proc.pid}\n`)
    expect([...w.pids().values()]).not.toContain(w.cli.proc.pid)

    const subs: MqttClient[] = []
    const subIds: string[] = []
    for (let i = 0; i < 6; i++) {
      const id = `w-sub-${i}`
      const url = i % 3 === 2 ? `ws://127.0.0.1:${w.ws}/mqtt` : `mqtt://127.0.0.1:${w.tcp}`
      const sub = await connect(url, { clientId: id, clean: false })
      await sub.subscribeAsync('w/#', { qos: 1 })
      subs.push(sub)
      subIds.push(id)
    }
    const pubIds = ['w-pub-0', 'w-pub-1', 'w-pub-2']
    const pubs = await Promise.all(pubIds.map(id => connect(`mqtt://127.0.0.1:${w.tcp}`, { clientId: id })))
    const where = await placement(w, [...subIds, ...pubIds])
    // node:cluster's round robin: both workers have subscribers and publishers
    expect(new Set(subIds.map(id => where.get(id)))).toEqual(new Set([0, 1]))
    expect(new Set(pubIds.map(id => where.get(id)))).toEqual(new Set([0, 1]))

    // the admin port is shared too: its requests are answered by either worker
    const answered = new Set<string>()
    for (let i = 0; i < 10 && answered.size < 2; i++) {
      const health = await (await fetch(`http://127.0.0.1:${w.admin}/healthz`)).json() as { ok: boolean, cluster?: { nodeId: string } }
      expect(health.ok).toBe(true)
      answered.add(health.cluster!.nodeId)
    }
    expect(answered).toEqual(new Set(['box-w0', 'box-w1']))

    const N = 200
    await Promise.all(pubs.map(async (pub, p) => {
      for (let i = 0; i < N; i++) void pub.publish(`w/${p}`, `${p}-${i}`, { qos: 1 })
      await pub.publishAsync(`w/${p}`, `${p}-${N}`, { qos: 1 })
    }))
    for (const sub of subs) {
      const got = (await inbox(sub).waitFor(pubs.length * (N + 1), 15_000)).map(m => m.payload)
      for (let p = 0; p < pubs.length; p++) {
        expect(got.filter(x => x.startsWith(`${p}-`))).toEqual(Array.from({ length: N + 1 }, (_, i) => `${p}-${i}`))
      }
      expect(got).toHaveLength(pubs.length * (N + 1))
    }
  })

  test('kill -9 of one worker: the primary restarts it under the same node id, and its clients reconnect and get what was published meanwhile', async () => {
    const w = await startWorkers()
    // a persistent subscriber on each worker, and a publisher on each (round robin: keep connecting until both are covered)
    const clients = new Map<string, MqttClient>()
    for (let i = 0; i < 8; i++) {
      const id = `k-${i}`
      clients.set(id, await connect(`mqtt://127.0.0.1:${w.tcp}`, { clientId: id, clean: false, reconnectPeriod: 200 }))
    }
    const where = await placement(w, [...clients.keys()])
    const on = (index: number) => [...clients.keys()].filter(id => where.get(id) === index)
    expect(on(0).length).toBeGreaterThanOrEqual(2)
    expect(on(1).length).toBeGreaterThanOrEqual(2)
    const victimSub = clients.get(on(0)[0]!)!
    const survivorSub = clients.get(on(1)[0]!)!
    const publisher = clients.get(on(1)[1]!)!
    await victimSub.subscribeAsync('k/#', { qos: 1 })
    await survivorSub.subscribeAsync('k/#', { qos: 1 })

    const victimPid = w.pids().get(0)!
    const closed = new Promise<void>(resolve => victimSub.once('close', () => resolve()))
    process.kill(victimPid, 'SIGKILL')
    await closed
    // published while the victim's subscriber is away: its session queue in Redis keeps them
    for (let i = 0; i < 50; i++) await publisher.publishAsync('k/t', `gap-${i}`, { qos: 1 })

    await until(() => w.readyCount(0) === 2, 'worker 0 to be restarted', 15_000)
    expect(w.pids().get(0)).not.toBe(victimPid)
    expect(alive(w.pids().get(1)!)).toBe(true)
    const died = w.cli.logs.find(l => l.msg === 'worker died; restarting it')
    expect(died).toMatchObject({ worker: 0, nodeId: 'box-w0', signal: 'SIGKILL' })
    expect(w.cli.logs.filter(l => l.msg === 'worker ready' && l.worker === 0).map(l => l.nodeId)).toEqual(['box-w0', 'box-w0'])

    // every client of the killed worker is back (on either worker), and the persistent one got the gap
    await until(() => [...clients.values()].every(c => c.connected), 'every client to reconnect', 15_000)
    for (let i = 50; i < 60; i++) await publisher.publishAsync('k/t', `gap-${i}`, { qos: 1 })
    const expected = Array.from({ length: 60 }, (_, i) => `gap-${i}`)
    expect((await inbox(victimSub).waitFor(60, 15_000)).map(m => m.payload)).toEqual(expected)
    expect((await inbox(survivorSub).waitFor(60)).map(m => m.payload)).toEqual(expected)

    // the restarted worker takes new connections again
    const fresh = []
    for (let i = 0; i < 4; i++) fresh.push(`fresh-${i}`)
    for (const id of fresh) await connect(`mqtt://127.0.0.1:${w.tcp}`, { clientId: id })
    expect(new Set((await placement(w, fresh)).values())).toEqual(new Set([0, 1]))
  })

  test('SIGTERM to the primary closes every worker, frees the ports, removes the pid file, and exits 0', async () => {
    const w = await startWorkers()
    const client = await connect(`mqtt://127.0.0.1:${w.tcp}`, { clientId: 'term' })
    const pids = [...w.pids().values()]
    const closed = new Promise<void>(resolve => client.once('close', () => resolve()))
    w.cli.proc.kill('SIGTERM')
    expect(await w.cli.exited).toBe(0)
    await closed
    expect(pids.filter(alive)).toEqual([])
    expect(w.cli.logs.filter(l => l.msg === 'broker closed').map(l => l.worker).sort()).toEqual([0, 1])
    expect(existsSync(w.pidFile)).toBe(false)
    for (const port of [w.tcp, w.ws, w.admin]) expect(await portIsFree(port)).toBe(true)
  })

  test('workers that cannot start (Redis unreachable) end the start with exit code 1, their error on stderr, and the port free', async () => {
    const dir = tempDir()
    const [tcp, deadRedis] = [await freePort(), await freePort()]
    const file = path.join(dir, 'switchyard.json')
    writeFileSync(file, JSON.stringify({ listeners: [{ type: 'tcp', port: tcp }], cluster: { redis: `redis://127.0.0.1:${deadRedis}/0`, nodeId: 'box', workers: 2 } }))
    const result = await runCli(['start', '--config', file, '--pid-file', path.join(dir, 'pid')], dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('ERR_CLUSTER_UNAVAILABLE')
    expect(result.stdout).toContain('worker exited during the start; stopping')
    expect(existsSync(path.join(dir, 'pid'))).toBe(false)
    expect(await portIsFree(tcp)).toBe(true)
  }, 40_000)

  test('SIGHUP to the primary reloads every worker', async () => {
    const w = await startWorkers()
    w.cli.proc.kill('SIGHUP')
    await until(() => w.cli.logs.filter(l => typeof l.msg === 'string' && l.msg.startsWith('reloaded the password file')).length === 2, 'both workers to reload')
    expect(w.cli.logs.filter(l => l.msg.startsWith('reloaded the password file')).map(l => l.worker).sort()).toEqual([0, 1])
  })
})
