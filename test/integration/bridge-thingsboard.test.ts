/*
 * The ThingsBoard MQTT integration tutorial (../shared/seeds, rules/tb-*.js)
 * across a bridge (issue 14): the devices stay on their own broker, a real
 * Mosquitto; Switchyard bridges their topics in, converts the uplink with
 * the tb-uplink rule, and sends the downlinks that tb-rpc makes back out to
 * the device on the remote broker.
 */
import { copyFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { hasMosquitto, startMosquitto } from '../helpers/mosquitto.js'
import { until } from '../helpers/wait.js'

const RULES = fileURLToPath(new URL('../../rules/', import.meta.url))
const TB = 'tb/mqtt-integration-tutorial/sensors/'

describe.skipIf(!hasMosquitto)('ThingsBoard tutorial flow across a bridge', () => {
  test('a sensor on the remote broker is converted here; a downlink published here reaches the device there', async () => {
    const rules = tempDir()
    for (const file of ['tb-uplink.js', 'tb-rpc.js']) copyFileSync(path.join(RULES, file), path.join(rules, file))
    const plant = await startMosquitto()
    const local = await startBroker({
      rules: { dir: rules },
      bridges: [{
        name: 'plant',
        address: plant.url,
        topics: [
          // uplink: readings, and the device's replies to two-way RPC
          { pattern: '+/temperature', direction: 'in', qos: 1, localPrefix: TB, remotePrefix: TB },
          { pattern: '+/rx/response', direction: 'in', qos: 1, localPrefix: TB, remotePrefix: TB },
          // downlink: what tb-rpc publishes for the device
          { pattern: '+/rx/#', direction: 'out', qos: 1, localPrefix: TB, remotePrefix: TB }
        ]
      }]
    })
    await until(() => local.bridges()[0]?.subscribed === true, 'the bridge subscribed', 10_000)
    await until(() => local.rules().filter(r => r.status === 'running').length === 2, 'both rules loaded', 15_000)

    const device = await connect(plant.url, { clientId: 'SN-001' })
    await device.subscribeAsync(`${TB}SN-001/rx/#`, { qos: 1 })
    const app = await connect(urlFor(local), { clientId: 'dashboard' })
    await app.subscribeAsync(['devices/SN-001/telemetry', 'devices/SN-001/rpc/response/+'], { qos: 1 })

    // Uplink: the device publishes to its own broker; the app here reads normalized telemetry.
    await device.publishAsync(`${TB}SN-001/temperature`, '{"value":25.1}', { qos: 1 })
    const [telemetry] = await inbox(app).waitFor(1, 10_000)
    expect([telemetry!.topic, JSON.parse(telemetry!.payload)]).toEqual(['devices/SN-001/telemetry', { temperature: 25.1 }])

    // Downlink, one-way: the app's RPC request here reaches the device there.
    await app.publishAsync('devices/SN-001/rpc/request/1', '{"method":"setValue","params":"42"}', { qos: 1 })
    const [rx] = await inbox(device).waitFor(1, 10_000)
    expect([rx!.topic, JSON.parse(rx!.payload)]).toEqual([`${TB}SN-001/rx`, { value: 42 }])

    // Two-way: the device's reply on its broker comes back to the app here.
    await app.publishAsync('devices/SN-001/rpc/request/2', '{"method":"setValue","params":"7","twoway":true}', { qos: 1 })
    const [, twoway] = await inbox(device).waitFor(2, 10_000)
    expect(twoway!.topic).toBe(`${TB}SN-001/rx/twoway`)
    await device.publishAsync(`${TB}SN-001/rx/response`, '{"rpcReceived":"OK"}', { qos: 1 })
    const [, reply] = await inbox(app).waitFor(2, 10_000)
    expect([reply!.topic, JSON.parse(reply!.payload)]).toEqual(['devices/SN-001/rpc/response/2', { rpcReceived: 'OK' }])

    // The reply came in through the bridge and matches the out route +/rx/#: it is not sent back.
    expect(local.bridges()[0]).toMatchObject({ messagesIn: 2, messagesOut: 2, loopsPrevented: 1 })
  })
})
