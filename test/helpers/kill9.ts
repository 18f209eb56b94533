/*
 * kill -9 under load, for the "nothing acknowledged is lost" tests
 * (kill9-inflight, bridge-kill9): a raw MQTT 3.1.1 publisher that keeps
 * IN_FLIGHT messages outstanding and SIGKILLs the broker process after a
 * chosen number of acknowledgements, and a seeded generator for the kill
 * points, so that a failing round can be replayed (KILL9_SEED).
 */
import net from 'node:net'
import mqttPacket from 'mqtt-packet'
import { expect } from 'vitest'
import type { CliProcess } from './cli.js'

export const IN_FLIGHT = 500

/** mulberry32: a seeded generator of numbers in [0, 1). */
export function random (seed: number): () => number {
  return () => {
    seed = (seed + 0x6D2B79F5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Publishes `k9/<round>` at `qos` with IN_FLIGHT outstanding; SIGKILLs the
 * broker after `killAfter` PUBACKs (QoS 2: PUBRECs); resolves, once the
 * broker is dead and the socket closed, with the acknowledged payloads.
 */
export async function publishUntilKilled (cli: CliProcess, round: number, killAfter: number, qos: 1 | 2 = 1): Promise<Set<string>> {
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
    socket.write(mqttPacket.generate({ cmd: 'publish', topic: `k9/${round}`, payload, qos, messageId, retain: false, dup: false }))
  }
  parser.on('packet', p => {
    if (p.cmd === 'connack') {
      for (let i = 0; i < IN_FLIGHT; i++) sendOne()
    } else if (p.cmd === 'puback' || p.cmd === 'pubrec') {
      // QoS 2: the message is the broker's at PUBREC [MQTT-4.3.3-1]; PUBREL only releases the id.
      if (p.cmd === 'pubrec') socket.write(mqttPacket.generate({ cmd: 'pubrel', messageId: p.messageId! }))
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
