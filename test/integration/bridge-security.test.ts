/*
 * Bridges (issue 14): TLS with a CA and a refused wrong CA; username and
 * password, a refused wrong password (state 0, logged, retried with backoff);
 * reload (SIGHUP) re-reads credentials and reconnects only what changed.
 */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { createBroker, type Broker, type ConfigInput } from '../../src/index.js'
import { parseConfig } from '../../src/config.js'
import { generateClientCertificate, generateDevCertificates } from '../../src/listeners/certs.js'
import { barrier } from '../helpers/barrier.js'
import { startBroker, tempDir, testCerts, urlFor } from '../helpers/broker.js'
import { startCli } from '../helpers/cli.js'
import { connect, inbox } from '../helpers/client.js'
import { captureLog } from '../helpers/log.js'
import { hasMosquitto, startMosquitto } from '../helpers/mosquitto.js'
import { until } from '../helpers/wait.js'

type BridgeInput = NonNullable<ConfigInput['bridges']>[number]

const OUT: BridgeInput['topics'] = [{ pattern: 'up/#', direction: 'out', qos: 1, localPrefix: '', remotePrefix: '' }]

async function withBridge (bridge: Partial<BridgeInput> & { address: string }, env: Record<string, string> = {}): Promise<{ broker: Broker, lines: Array<Record<string, unknown>> }> {
  const log = captureLog('info')
  const broker = await createBroker({
    listeners: [{ type: 'tcp', port: 0 }],
    persistence: { type: 'memory' },
    rules: { dir: null },
    bridges: [{ name: 'plant', topics: OUT, reconnect: { minMs: 50, maxMs: 400 }, ...bridge }]
  }, { logger: log.logger, env })
  return { broker, lines: log.lines }
}

/** Once connected, a message crosses (proved end to end, not from the state alone). */
async function crosses (broker: Broker, remoteUrl: string, options: object = {}): Promise<void> {
  await until(() => broker.bridges()[0]?.connected === true, 'the bridge connected', 10_000)
  const sink = await connect(remoteUrl, { clientId: 'sink', ...options })
  await sink.subscribeAsync('up/#', { qos: 1 })
  await barrier(broker, sink, 'up/marker')
}

describe.skipIf(!hasMosquitto)('bridge TLS and credentials, against Mosquitto', () => {
  test('mqtts:// with the CA that signed the remote certificate; a wrong CA is refused and retried', async () => {
    const { cert, key, ca } = testCerts()
    const mosquitto = await startMosquitto({ listener: [`certfile ${cert}`, `keyfile ${key}`] })
    const address = `mqtts://localhost:${mosquitto.port}`
    const good = await withBridge({ address, ca })
    try {
      await crosses(good.broker, address, { ca: [await import('node:fs').then(fs => fs.readFileSync(ca))], rejectUnauthorized: true })
    } finally {
      await good.broker.close()
    }

    const otherCa = generateDevCertificates(tempDir())
    const bad = await withBridge({ address, ca: otherCa, name: 'wrong-ca' })
    try {
      await until(() => bad.broker.bridges()[0]!.reconnects >= 2, 'two refused attempts', 10_000)
      const view = bad.broker.bridges()[0]!
      expect(view).toMatchObject({ connected: false, messagesOut: 0 })
      expect(view.lastError).toMatch(/certificate/i)
    } finally {
      await bad.broker.close()
    }
  })

  test('a client certificate (cert and key) for a remote broker that requires one; without it, refused', async () => {
    const { cert, key, ca, dir } = testCerts()
    const client = generateClientCertificate(dir, 'bridge-plant')
    const mosquitto = await startMosquitto({ listener: [`certfile ${cert}`, `keyfile ${key}`, `cafile ${ca}`, 'require_certificate true'] })
    const address = `mqtts://localhost:${mosquitto.port}`
    const without = await withBridge({ address, ca, name: 'no-cert' })
    try {
      await until(() => without.broker.bridges()[0]!.reconnects >= 1, 'a refused attempt', 10_000)
      expect(without.broker.bridges()[0]!.connected).toBe(false)
    } finally {
      await without.broker.close()
    }
    const withCert = await withBridge({ address, ca, cert: client.cert, key: client.key })
    try {
      const fs = await import('node:fs')
      await crosses(withCert.broker, address, { ca: [fs.readFileSync(ca)], cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) })
    } finally {
      await withCert.broker.close()
    }
  })

  test('username and password; a wrong password: state 0, the reason logged, retried with a growing backoff; fixed by reload', async () => {
    const mosquitto = await startMosquitto({ users: { bridge: 'secret' } })
    const { broker, lines } = await withBridge({ address: mosquitto.url, username: 'bridge', passwordEnv: 'PLANT_PASSWORD' }, { PLANT_PASSWORD: 'wrong' })
    try {
      const app = await connect(urlFor(broker))
      await app.subscribeAsync('$SYS/broker/connection/plant/state')
      const [state] = await inbox(app).waitFor(1)
      expect(state!.payload).toBe('0')

      await until(() => broker.bridges()[0]!.reconnects >= 4, 'four refused attempts', 15_000)
      const refusals = lines.filter(l => l.bridge === 'plant' && typeof l.retryInMs === 'number')
      expect(refusals[0]!.msg).toMatch(/cannot connect: .*(Not authorized|Bad username or password)/)
      // minMs 50, doubling, capped at maxMs 400.
      expect(refusals.slice(0, 4).map(l => l.retryInMs)).toEqual([50, 100, 200, 400])
      expect(broker.bridges()[0]).toMatchObject({ connected: false, lastError: expect.stringMatching(/Not authorized|Bad username or password/) })

      // What SIGHUP does with a corrected config file.
      const fixed = parseConfig({ bridges: [{ name: 'plant', address: mosquitto.url, username: 'bridge', password: 'secret', topics: OUT }] }).bridges
      expect(await broker.reload({ bridges: fixed })).toEqual({ ok: true, problems: [] })
      await crosses(broker, mosquitto.url, { username: 'bridge', password: 'secret' })
      await until(() => inbox(app).messages.some(m => m.payload === '1'), 'state 1')
    } finally {
      await broker.close()
    }
  })

  test('SIGHUP re-reads the config file\'s bridge credentials', async () => {
    const mosquitto = await startMosquitto({ users: { bridge: 'secret' } })
    const dir = tempDir()
    const config = (password: string) => ({
      listeners: [{ type: 'tcp', port: 0 }],
      persistence: { type: 'memory' },
      rules: { dir: null },
      admin: { port: 0 },
      bridges: [{ name: 'plant', address: mosquitto.url, username: 'bridge', password, topics: OUT, reconnect: { minMs: 50, maxMs: 200 } }]
    })
    const cli = await startCli(dir, config('wrong'))
    await until(() => cli.ports.admin !== undefined, 'the admin listener')
    const bridges = async () => (await (await fetch(`http://127.0.0.1:${cli.ports.admin}/api/bridges`)).json()) as Array<{ connected: boolean, reconnects: number }>
    await until(async () => (await bridges())[0]!.reconnects >= 1, 'a refused attempt', 10_000)
    writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify(config('secret')))
    cli.proc.kill('SIGHUP')
    await until(async () => (await bridges())[0]!.connected, 'connected after SIGHUP', 10_000)
    cli.proc.kill('SIGTERM')
    expect(await cli.exited).toBe(0)
  })
})

describe('bridge reload, against a second Switchyard', () => {
  test('only the bridges whose settings changed reconnect', async () => {
    const remote = await startBroker()
    const connects = new Map<string, number>()
    remote.on('clientConnect', c => { connects.set(c.clientId, (connects.get(c.clientId) ?? 0) + 1) })
    const bridge = (name: string, keepalive: number) => ({ name, address: urlFor(remote), keepalive, topics: OUT })
    const local = await startBroker({ bridges: [bridge('a', 60), bridge('b', 60)] })
    await until(() => local.bridges().every(b => b.connected), 'both bridges connected')

    expect(await local.reload({ bridges: parseConfig({ bridges: [bridge('a', 60), bridge('b', 30)] }).bridges })).toMatchObject({ ok: true })
    await until(() => connects.get('switchyard-b') === 2 && local.bridges().every(b => b.connected), 'b reconnected')
    expect(connects.get('switchyard-a')).toBe(1)

    // Unchanged: nobody reconnects; a removed bridge stops, a new one starts.
    expect(await local.reload({ bridges: parseConfig({ bridges: [bridge('a', 60), bridge('c', 60)] }).bridges })).toMatchObject({ ok: true })
    await until(() => local.bridges().map(b => `${b.name}:${b.connected}`).join() === 'a:true,c:true', 'c connected and b gone')
    expect([connects.get('switchyard-a'), connects.get('switchyard-b'), connects.get('switchyard-c')]).toEqual([1, 2, 1])
    await until(() => !remote.clients().some(c => c.clientId === 'switchyard-b'), 'b disconnected from the remote broker')
  })

  test('a reload whose password variable is missing changes nothing and says why', async () => {
    const remote = await startBroker()
    const local = await startBroker({ bridges: [{ name: 'a', address: urlFor(remote), topics: OUT }] })
    await until(() => local.bridges()[0]!.connected, 'connected')
    const result = await local.reload({ bridges: parseConfig({ bridges: [{ name: 'a', address: urlFor(remote), username: 'u', passwordEnv: 'NOT_SET_ANYWHERE', topics: OUT }] }).bridges })
    expect(result.ok).toBe(false)
    expect(result.problems).toEqual([expect.stringContaining('bridges[0].passwordEnv: the environment variable NOT_SET_ANYWHERE is not set')])
    expect(local.bridges()[0]).toMatchObject({ connected: true, reconnects: 0 })
  })
})
