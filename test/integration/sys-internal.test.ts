import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import type { ConfigInput } from '../../src/index.js'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { until } from '../helpers/rules.js'

/*
 * Aedes publishes $SYS/<broker id>/new/clients, new/subscribes,
 * new/unsubscribes, disconnect/clients, heartbeat and birth, with client ids
 * and subscriptions in them. They are for the broker itself; no client may
 * receive them, whatever the ACL.
 */
describe("Aedes's own $SYS/<id>/ topics stay inside the broker", () => {
  const withAcl = (): ConfigInput => {
    const file = path.join(tempDir(), 'acl')
    writeFileSync(file, 'topic read $SYS/#\ntopic read marker\ntopic read devices/#\n')
    return { auth: { aclFile: file, allowAnonymous: true } }
  }

  test.each([
    ['the default config', (): ConfigInput => ({})],
    ['an ACL granting read on $SYS/#', withAcl]
  ])('an anonymous $SYS/# subscriber sees no client churn, on %s, and still gets $SYS/broker/...', async (_, extra) => {
    const broker = await startBroker(extra())
    const watcher = await connect(urlFor(broker), { clientId: 'watcher' })
    await watcher.subscribeAsync(['$SYS/#', 'marker'])
    // $SYS/broker/... are retained: the subscription replays them.
    await until(() => inbox(watcher).messages.some(m => m.topic === '$SYS/broker/version'), '$SYS/broker/version')

    const churn = await connect(urlFor(broker), { clientId: 'secret-device-42' })
    await churn.subscribeAsync('devices/secret-device-42/#')
    await churn.unsubscribeAsync('devices/secret-device-42/#')
    await churn.endAsync()
    await until(() => broker.stats().connectedClients === 1, 'the churning client to be gone')

    // Deliveries to one client keep their order: once the marker is in,
    // anything published before it would be in too.
    await broker.publish({ topic: 'marker', payload: 'end' })
    await until(() => inbox(watcher).messages.some(m => m.topic === 'marker'), 'the marker')

    const leaked = inbox(watcher).messages.filter(m => m.topic.startsWith('$SYS/') && !m.topic.startsWith('$SYS/broker/'))
    expect(leaked.map(m => `${m.topic} ${m.payload}`)).toEqual([])
    expect(inbox(watcher).messages.some(m => m.payload.includes('secret-device-42'))).toBe(false)
  })
})
