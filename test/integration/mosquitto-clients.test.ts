import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'
import { listenerFor, startBroker, testCerts } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'

const run = promisify(execFile)
const has = async (bin: string) => run('sh', ['-c', `command -v ${bin}`]).then(() => true, () => false)
const available = await has('mosquitto_sub') && await has('mosquitto_pub') && await has('stdbuf')

/** mosquitto_sub for `count` messages; resolves with its stdout lines. */
function mosquittoSub (args: string[], count: number): { ready: Promise<void>, lines: Promise<string[]> } {
  // stdbuf: mosquitto_sub block-buffers a piped stdout, which would hide the
  // SUBACK line until it exits.
  const proc = spawn('stdbuf', ['-oL', 'mosquitto_sub', ...args, '-C', String(count), '-W', '10', '-v', '-d'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let debug = ''
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', d => {
      out += d
      // -d prints protocol traffic; SUBACK means the subscription is in place
      if (/Client \S+ received SUBACK/.test(out)) resolve()
    })
    proc.stderr.on('data', d => { debug += d })
    proc.on('exit', code => reject(new Error(`mosquitto_sub exited ${code} before SUBACK: ${out} ${debug}`)))
  })
  const lines = new Promise<string[]>((resolve, reject) => {
    proc.on('exit', code => code === 0
      ? resolve(out.split('\n').filter(l => l && !l.startsWith('Client ') && !l.startsWith('Subscribed')))
      : reject(new Error(`mosquitto_sub exited ${code}: ${debug}`)))
  })
  return { ready, lines }
}

// .ci/run installs mosquitto-clients; a developer without them sees these skipped.
describe.skipIf(!available)('real Mosquitto clients', () => {
  test('mosquitto_sub and mosquitto_pub over TCP, QoS 0/1/2, and retained', async () => {
    const broker = await startBroker()
    const port = String(broker.listeners[0]!.port)
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-t', 'tb/sensors/SN-001/temperature', '-m', '{"value":21}', '-q', '1', '-r'])
    const sub = mosquittoSub(['-h', '127.0.0.1', '-p', port, '-t', 'tb/sensors/+/temperature', '-q', '2'], 4)
    await sub.ready
    for (const qos of ['0', '1', '2']) {
      await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-t', 'tb/sensors/SN-002/temperature', '-m', `q${qos}`, '-q', qos])
    }
    expect(await sub.lines).toEqual([
      'tb/sensors/SN-001/temperature {"value":21}',
      'tb/sensors/SN-002/temperature q0',
      'tb/sensors/SN-002/temperature q1',
      'tb/sensors/SN-002/temperature q2'
    ])
  })

  test('mosquitto_sub over TLS trusting the generated CA, fed by MQTT.js over WSS', async () => {
    const broker = await startBroker({ listeners: [listenerFor('tls'), listenerFor('wss')] })
    const [tlsListener, wssListener] = broker.listeners
    const sub = mosquittoSub(['-h', 'localhost', '-p', String(tlsListener!.port), '--cafile', testCerts().ca, '-t', 'devices/+/telemetry', '-q', '1'], 1)
    await sub.ready
    const pub = await connect(`wss://127.0.0.1:${wssListener!.port}/mqtt`)
    await pub.publishAsync('devices/SN-001/telemetry', '{"temperature":21}', { qos: 1 })
    expect(await sub.lines).toEqual(['devices/SN-001/telemetry {"temperature":21}'])
  })

  test('mosquitto_pub reaches an MQTT.js subscriber with MQTT 3.1 (protocol v31)', async () => {
    const broker = await startBroker()
    const port = String(broker.listeners[0]!.port)
    const sub = await connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 3, protocolId: 'MQIsdp' })
    await sub.subscribeAsync('legacy/#', { qos: 1 })
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv31', '-t', 'legacy/a', '-m', 'v31', '-q', '1'])
    expect((await inbox(sub).waitFor(1))[0]).toMatchObject({ topic: 'legacy/a', payload: 'v31' })
  })
})
