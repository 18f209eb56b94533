import { execFile, execFileSync, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'
import { createBroker, type Broker } from '../../src/index.js'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { retainedBarrier } from '../helpers/barrier.js'
import { connect, inbox } from '../helpers/client.js'
import { captureLog } from '../helpers/log.js'
import { startWithRules, until } from '../helpers/rules.js'

const run = promisify(execFile)

const adminUrl = (broker: Broker, p: string) => `http://127.0.0.1:${broker.admin!.port}${p}`

/** The value of one sample in Prometheus text, e.g. sample(text, 'switchyard_messages_received_total{qos="1"}'). */
function sample (text: string, series: string): number {
  const line = text.split('\n').find(l => l.startsWith(series + ' '))
  if (line === undefined) throw new Error(`no sample ${series} in:\n${text.split('\n').filter(l => l.startsWith(series.split('{')[0]!)).join('\n')}`)
  return Number(line.slice(series.length + 1))
}

async function scrape (broker: Broker): Promise<string> {
  const res = await fetch(adminUrl(broker, '/metrics'))
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return res.text()
}

describe('GET /metrics', () => {
  test('numbers move as clients connect, publish, retain, subscribe and fail to log in', async () => {
    const { broker } = await startWithRules({
      'up.js': `export const topics = ['raw/+']; export function convert (m) { return { topic: 'norm/' + m.topic.split('/')[1], payload: { v: Number(m.payload) } } }`
    }, { config: { admin: { port: 0 } } })
    const before = await scrape(broker)
    expect(sample(before, 'switchyard_clients_connected')).toBe(0)
    expect(sample(before, 'switchyard_messages_received_total{qos="1"}')).toBe(0)

    const sub = await connect(urlFor(broker))
    await sub.subscribeAsync('norm/#', { qos: 1 })
    const pub = await connect(urlFor(broker))
    for (let i = 0; i < 5; i++) await pub.publishAsync('raw/a', String(i), { qos: 1 })
    await pub.publishAsync('config/x', 'kept', { qos: 0, retain: true })
    await inbox(sub).waitFor(5)

    const after = await scrape(broker)
    expect(sample(after, 'switchyard_clients_connected')).toBe(2)
    expect(sample(after, 'switchyard_messages_received_total{qos="1"}')).toBe(5)
    expect(sample(after, 'switchyard_messages_received_total{qos="0"}')).toBe(1)
    expect(sample(after, 'switchyard_messages_sent_total{qos="1"}')).toBe(5) // the rule's outputs, to sub
    expect(sample(after, 'switchyard_retained_messages')).toBe(1)
    expect(sample(after, 'switchyard_subscriptions')).toBe(1)
    expect(sample(after, 'switchyard_bytes_received_total')).toBeGreaterThan(sample(before, 'switchyard_bytes_received_total'))
    expect(sample(after, 'switchyard_bytes_sent_total')).toBeGreaterThan(0)
    expect(sample(after, 'switchyard_connections_total')).toBe(2)
    expect(sample(after, 'switchyard_rule_matched_total{rule="up"}')).toBe(5)
    expect(sample(after, 'switchyard_rule_outputs_total{rule="up"}')).toBe(5)
    expect(sample(after, 'switchyard_rule_duration_seconds_count{rule="up"}')).toBe(5)
    expect(sample(after, 'switchyard_rule_status{rule="up",status="running"}')).toBe(1)
    expect(after).toContain('switchyard_process_resident_memory_bytes')

    // counters are counters: a second scrape without traffic does not double them
    expect(sample(await scrape(broker), 'switchyard_messages_received_total{qos="1"}')).toBe(5)
  })

  test('auth failures and dropped messages are counted', async () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'acl'), 'topic read #\n')
    const broker = await startBroker({ admin: { port: 0 }, auth: { aclFile: path.join(dir, 'acl'), allowAnonymous: true } })
    const client = await connect(urlFor(broker))
    await client.publishAsync('not/allowed', 'x', { qos: 1 })
    const text = await scrape(broker)
    expect(sample(text, 'switchyard_messages_dropped_total{reason="denied"}')).toBe(1)
    expect(sample(text, 'switchyard_auth_failures_total')).toBe(0)
  })
})

describe('GET /healthz', () => {
  test('200 with every listener up and persistence writable', async () => {
    const broker = await startBroker({ admin: { port: 0 }, persistence: { type: 'level', path: path.join(tempDir(), 'data') } })
    const res = await fetch(adminUrl(broker, '/healthz'))
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ ok: true, listeners: [{ type: 'tcp', port: broker.listeners[0]!.port, up: true }], persistence: { ok: true } })
  })

  // A real failure: LevelDB on a 2 MB tmpfs, filled up. Needs root (CI runs as root).
  const canMount = (() => {
    try {
      const probe = mkdtempSync(path.join(os.tmpdir(), 'switchyard-mount-probe-'))
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' })
      execFileSync('umount', [probe], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  })()

  test.skipIf(!canMount)('503, with the reason, when persistence cannot be written', async () => {
    const mount = path.join(tempDir(), 'small')
    mkdirSync(mount)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mount])
    let broker: Broker | undefined
    try {
      broker = await createBroker({
        listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'level', path: path.join(mount, 'data') },
        admin: { port: 0 }, log: { level: 'silent' }, rules: { dir: tempDir() }
      })
      expect((await fetch(adminUrl(broker, '/healthz'))).status).toBe(200)
      // fill the disk
      try { writeFileSync(path.join(mount, 'filler'), Buffer.alloc(4 * 1024 * 1024)) } catch { /* ENOSPC, as intended */ }
      const res = await fetch(adminUrl(broker, '/healthz'))
      const body = await res.json() as { ok: boolean, persistence: { ok: boolean, error: string } }
      expect(res.status).toBe(503)
      expect(body.ok).toBe(false)
      expect(body.persistence.ok).toBe(false)
      expect(body.persistence.error).toMatch(/space|ENOSPC|IO error/i)
    } finally {
      await broker?.close()
      execFileSync('umount', ['-l', mount])
    }
  })
})

describe('GET /api/rules and /api/clients', () => {
  test('JSON views of the rules and the connected clients', async () => {
    const { broker } = await startWithRules({ 'r.js': `export const topics = ['a']; export function convert () { return null }` }, { config: { admin: { port: 0 } } })
    const client = await connect(urlFor(broker), { clientId: 'dev-1' })
    await client.subscribeAsync('x/#')
    const rules = await (await fetch(adminUrl(broker, '/api/rules'))).json() as Array<{ name: string, status: string }>
    expect(rules).toEqual([expect.objectContaining({ name: 'r', status: 'running', topics: ['a'] })])
    const clients = await (await fetch(adminUrl(broker, '/api/clients'))).json() as unknown[]
    expect(clients).toEqual([expect.objectContaining({ clientId: 'dev-1', username: null, clean: true, subscriptions: ['x/#'], remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/) })])
    expect((await fetch(adminUrl(broker, '/nope'))).status).toBe(404)
    expect((await fetch(adminUrl(broker, '/metrics'), { method: 'POST' })).status).toBe(405)
  })
})

const haveMosquittoSub = await run('sh', ['-c', 'command -v mosquitto_sub']).then(() => true, () => false)

describe.skipIf(!haveMosquittoSub)('$SYS/broker topics, as Mosquitto publishes them', () => {
  test('read with mosquitto_sub', async () => {
    const broker = await startBroker({ sys: { interval: 1 } })
    const c = await connect(urlFor(broker))
    await c.publishAsync('x', 'y', { qos: 1 })
    const proc = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(broker.listeners[0]!.port), '-t', '$SYS/broker/#', '-v', '-W', '4'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    proc.stdout.on('data', d => { out += d })
    await new Promise(resolve => proc.on('exit', resolve))
    // Topic names and values may both hold spaces ("retained messages/count"), so match names as prefixes.
    const lines = out.trim().split('\n')
    const topics = new Map<string, string>()
    const names = ['version', 'uptime', 'clients/connected', 'clients/total', 'clients/maximum', 'clients/disconnected', 'messages/received',
      'messages/sent', 'bytes/received', 'bytes/sent', 'publish/messages/received', 'publish/messages/sent', 'publish/messages/dropped',
      'retained messages/count', 'subscriptions/count', 'heap/current size', 'load/messages/received/1min', 'load/bytes/sent/15min', 'load/connections/5min']
    for (const name of names) {
      const prefix = `$SYS/broker/${name} `
      const last = lines.filter(l => l.startsWith(prefix)).at(-1)
      expect(last, name).toBeDefined()
      topics.set(`$SYS/broker/${name}`, last!.slice(prefix.length))
    }
    expect(topics.get('$SYS/broker/version')).toMatch(/^switchyard version \d+\.\d+\.\d+/)
    expect(topics.get('$SYS/broker/uptime')).toMatch(/^\d+ seconds$/)
    expect(Number(topics.get('$SYS/broker/clients/connected'))).toBeGreaterThanOrEqual(1)
    expect(Number(topics.get('$SYS/broker/publish/messages/received'))).toBeGreaterThanOrEqual(1)
  })

  test('only clients whose ACL grants read receive them', async () => {
    const dir = tempDir()
    // barrier/# only for the marker of the barrier below
    writeFileSync(path.join(dir, 'acl'), 'topic read $SYS/broker/clients/#\ntopic read barrier/#\n')
    const broker = await startBroker({ sys: { interval: 1 }, auth: { aclFile: path.join(dir, 'acl'), allowAnonymous: true } })
    const c = await connect(urlFor(broker))
    // subscribes and waits until the whole retained replay is in
    await retainedBarrier(broker, c, '$SYS/broker/clients/#', 'barrier/retained')
    await inbox(c).waitFor(1, 3000)
    expect(inbox(c).messages.every(m => m.topic.startsWith('$SYS/broker/clients/'))).toBe(true)
    const wide = await connect(urlFor(broker))
    const { granted } = await import('../helpers/client.js')
    expect(await granted(wide, '$SYS/broker/#')).toEqual([128])
  })
})

describe('logs', () => {
  test('connect and disconnect with client id, address and reason', async () => {
    const log = captureLog()
    const broker = await startBroker({}, { logger: log.logger })
    const a = await connect(urlFor(broker), { clientId: 'polite' })
    await a.endAsync()
    const b = await connect(urlFor(broker), { clientId: 'abrupt' })
    b.stream.destroy()
    await until(() => log.lines.filter(l => l.msg === 'client disconnected').length === 2, 'two disconnects')
    const connected = log.lines.find(l => l.msg === 'client connected' && l.clientId === 'polite')
    expect(connected).toMatchObject({ level: 30, remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/) })
    const reasons = Object.fromEntries(log.lines.filter(l => l.msg === 'client disconnected').map(l => [l.clientId, l.reason]))
    expect(reasons.polite).toBe('DISCONNECT')
    expect(reasons.abrupt).not.toBe('DISCONNECT')
  })
})
