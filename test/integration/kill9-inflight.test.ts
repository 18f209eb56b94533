import net from 'node:net'
import mqttPacket from 'mqtt-packet'
import { expect, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startCli, type CliProcess } from '../helpers/cli.js'

/*
 * Issue 9, finding 1: Aedes 1.2 wrote a QoS 1 PUBACK before storing the
 * message for offline subscribers, so a kill -9 with messages in flight lost
 * acknowledged messages (63-682 of ~2,600). Here a publisher keeps 500 QoS 1
 * messages in flight while the broker is SIGKILLed at a random point, three
 * times; after each restart the offline persistent subscriber must receive
 * every message whose PUBACK arrived.
 */
const IN_FLIGHT = 500
const ROUNDS = 3

// mulberry32: a seeded generator, so a failing kill point can be replayed
function random (seed: number): () => number {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Publishes QoS 1 with IN_FLIGHT outstanding; SIGKILLs the broker after `killAfter` PUBACKs; resolves with the acknowledged payloads. */
async function publishUntilKilled (cli: CliProcess, round: number, killAfter: number): Promise<Set<string>> {
  const socket = net.connect(cli.ports.tcp!, '127.0.0.1')
  socket.setNoDelay(true)
  socket.on('error', () => {})
  const parser = mqttPacket.parser()
  const inFlight = new Map<number, string>()
  const acked = new Set<string>()
  let sent = 0
  const sendOne = () => {
    const messageId = (sent % 65535) + 1
    const payload = `${round}-${sent++}`
    inFlight.set(messageId, payload)
    socket.write(mqttPacket.generate({ cmd: 'publish', topic: `k9/${round}`, payload, qos: 1, messageId, retain: false, dup: false }))
  }
  parser.on('packet', p => {
    if (p.cmd === 'connack') {
      for (let i = 0; i < IN_FLIGHT; i++) sendOne()
    } else if (p.cmd === 'puback') {
      acked.add(inFlight.get(p.messageId!)!)
      inFlight.delete(p.messageId!)
      if (acked.size === killAfter) cli.proc.kill('SIGKILL')
      else if (acked.size < killAfter) sendOne()
    }
  })
  socket.on('data', d => parser.parse(d))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `k9-pub-${round}`, keepalive: 60 }))
  expect(await cli.exited).toBe('SIGKILL')
  // PUBACKs already on their way still count: wait until the socket is gone
  if (!socket.destroyed) await new Promise(resolve => socket.once('close', resolve))
  return acked
}

test('kill -9 with 500 QoS 1 messages in flight loses no acknowledged message, over three rounds (LevelDB)', { timeout: 180_000 }, async () => {
  const seed = Number(process.env.KILL9_SEED ?? Date.now() % 100_000)
  const rand = random(seed)
  const dir = tempDir()
  const config = { listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'level', path: 'data' }, limits: { maxQueuedMessages: 0 } }
  let cli = await startCli(dir, config)
  const url = () => `mqtt://127.0.0.1:${cli.ports.tcp}`
  const sub = await connect(url(), { clientId: 'k9-sub', clean: false })
  await sub.subscribeAsync('k9/#', { qos: 1 })
  await sub.endAsync()

  const figures: string[] = []
  let lost = 0
  for (let round = 1; round <= ROUNDS; round++) {
    const killAfter = 200 + Math.floor(rand() * 3000)
    const acked = await publishUntilKilled(cli, round, killAfter)
    cli = await startCli(dir, config)
    const back = await connect(url(), { clientId: 'k9-sub', clean: false })
    const received = new Set<string>()
    const missing = () => [...acked].filter(p => !received.has(p))
    // Every acknowledged message must arrive; a lost one never does, so on
    // failure this waits out the timeout and reports how many.
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, 20_000)
      const check = () => {
        for (const m of inbox(back).messages) received.add(m.payload)
        if (missing().length === 0) { clearTimeout(timer); resolve() } else setTimeout(check, 50)
      }
      check()
    })
    figures.push(`round ${round}: killed after ${killAfter} PUBACKs, ${acked.size} acknowledged, ${missing().length} lost`)
    lost += missing().length
    await back.endAsync()
  }
  console.log(`kill -9 in flight (seed ${seed}):\n  ${figures.join('\n  ')}`)
  expect(lost).toBe(0)
  cli.proc.kill('SIGTERM')
  expect(await cli.exited).toBe(0)
})
