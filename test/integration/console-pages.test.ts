/*
 * The web console's pages in a real Chromium, signed in, against a real
 * broker: Mosquitto's command line clients and MQTT.js on the other side
 * (docs/operations.md#console).
 */
import { execFile, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { retainedBarrier } from '../helpers/barrier.js'
import { haveChromium, signIn, startConsoleBroker, useChromium } from '../helpers/browser.js'
import { connect, inbox } from '../helpers/client.js'

const run = promisify(execFile)
const has = async (bin: string) => run('sh', ['-c', `command -v ${bin}`]).then(() => true, () => false)
const haveMosquitto = await has('mosquitto_pub') && await has('mosquitto_sub') && await has('stdbuf')

const chromium = useChromium()

/** mosquitto_sub for one message, printed as "<retain> <qos> <topic> <payload>"; `ready` once its SUBACK is in. */
function mosquittoSubOne (port: number, topic: string): { ready: Promise<void>, line: Promise<string> } {
  // stdbuf: a piped mosquitto_sub block-buffers its stdout, which would hide the SUBACK line.
  const proc = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-h', '127.0.0.1', '-p', String(port), '-t', topic, '-q', '2', '-C', '1', '-W', '15', '-d', '-F', '%r %q %t %p'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  const ready = new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', d => { out += d; if (/received SUBACK/.test(out)) resolve() })
    proc.on('exit', code => reject(new Error(`mosquitto_sub exited ${code} before SUBACK: ${out}`)))
  })
  const line = new Promise<string>((resolve, reject) => {
    proc.on('exit', code => code === 0
      ? resolve(out.split('\n').filter(l => l && !l.startsWith('Client ') && !l.startsWith('Subscribed'))[0] ?? '')
      : reject(new Error(`mosquitto_sub exited ${code}: ${out}`)))
  })
  return { ready, line }
}

const mosquittoPub = (port: number, ...args: string[]) => run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), ...args])

// A browser, a broker and a rule host on a loaded CI machine: bounds on hangs, not timing assertions.
describe.skipIf(!haveChromium || !haveMosquitto)('console pages', { timeout: 60_000 }, () => {
  test('Live: a message published with mosquitto_pub appears, newest first, as pretty JSON, text or hex, with its QoS and retain flag; pause, resume, clear', async () => {
    const { consoleUrl, mqttPort } = await startConsoleBroker()
    const page = await chromium.newPage(consoleUrl)
    await signIn(page)
    await page.getByRole('link', { name: 'Live' }).click()
    for (const name of ['Timestamp', 'Topic', 'Message']) await page.getByRole('columnheader', { name, exact: true }).waitFor()
    expect(await page.getByLabel('Topic filter').inputValue()).toBe('#')
    await page.getByRole('status', { name: 'Stream connected' }).waitFor()

    await mosquittoPub(mqttPort, '-t', 'factory/line1/temp', '-m', '{"temp":21.5,"unit":"C"}', '-q', '1', '-r')
    const bytes = path.join(tempDir(), 'bytes')
    writeFileSync(bytes, Buffer.from([0x00, 0x01, 0xfe, 0xff]))
    await mosquittoPub(mqttPort, '-t', 'factory/line1/raw', '-f', bytes)
    await mosquittoPub(mqttPort, '-t', 'factory/line1/state', '-m', 'running', '-q', '2')

    const rows = page.locator('table.live tbody tr')
    await expect.poll(() => rows.count()).toBe(3)
    const cells = async (i: number) => (await rows.nth(i).locator('td').allInnerTexts()).slice(1)
    expect(await cells(0)).toEqual(['factory/line1/state', 'running', '2', ''])
    expect(await cells(1)).toEqual(['factory/line1/raw', 'hex 00 01 fe ff', '0', ''])
    expect(await cells(2)).toEqual(['factory/line1/temp', '{\n  "temp": 21.5,\n  "unit": "C"\n}', '1', 'retained'])
    // SWITCHYARD_CONSOLE_SCREENSHOT=docs/console-live.png refreshes the picture in docs/operations.md.
    if (process.env.SWITCHYARD_CONSOLE_SCREENSHOT) await page.locator('#app').screenshot({ path: process.env.SWITCHYARD_CONSOLE_SCREENSHOT })

    await page.getByRole('button', { name: 'Pause' }).click()
    await mosquittoPub(mqttPort, '-t', 'factory/line1/state', '-m', 'stopped')
    await mosquittoPub(mqttPort, '-t', 'factory/line1/state', '-m', 'idle')
    // They arrived (the page counts them) and wait: the table did not change.
    await page.getByText('Paused: 2 waiting').waitFor()
    expect(await rows.count()).toBe(3)
    // Resumed, both are drawn in one frame, newest first still.
    await page.getByRole('button', { name: 'Resume' }).click()
    await expect.poll(() => rows.count()).toBe(5)
    expect(await cells(0)).toEqual(['factory/line1/state', 'idle', '0', ''])
    expect(await cells(1)).toEqual(['factory/line1/state', 'stopped', '0', ''])

    await page.getByRole('button', { name: 'Clear' }).click()
    await page.getByText('No messages yet.').waitFor()
    expect(await rows.count()).toBe(0)

    // Another filter: only its messages; the first one on it proves the new stream is open.
    await page.getByLabel('Topic filter').fill('factory/line2/#')
    await page.getByRole('button', { name: 'Apply' }).click()
    await page.getByRole('status', { name: 'Stream connected' }).waitFor()
    await mosquittoPub(mqttPort, '-t', 'factory/line1/state', '-m', 'not shown')
    await mosquittoPub(mqttPort, '-t', 'factory/line2/state', '-m', 'shown')
    await expect.poll(() => rows.count()).toBe(1)
    expect(await cells(0)).toEqual(['factory/line2/state', 'shown', '0', ''])

    // A filter the broker refuses (# must be last) closes the stream, and the page says so.
    await page.getByLabel('Topic filter').fill('factory/#/state')
    await page.getByRole('button', { name: 'Apply' }).click()
    await page.getByText('The stream closed').waitFor()
    expect(await page.getByRole('status', { name: 'Stream closed' }).count()).toBe(1)
  })

  test('Live keeps the last 1,000 rows, and counts the messages this browser dropped', async () => {
    const { consoleUrl, mqttUrl } = await startConsoleBroker()
    const page = await chromium.newPage(consoleUrl)
    await signIn(page)
    await page.getByRole('link', { name: 'Live' }).click()
    await page.getByLabel('Topic filter').fill('bulk/#')
    await page.getByRole('button', { name: 'Apply' }).click()
    await page.getByRole('status', { name: 'Stream connected' }).waitFor()
    // Paused, 1,005 messages wait; resumed, only the newest 1,000 can be shown.
    await page.getByRole('button', { name: 'Pause' }).click()
    const pub = await connect(mqttUrl)
    for (let i = 1; i < 1005; i++) pub.publish('bulk/n', String(i))
    await pub.publishAsync('bulk/n', '1005', { qos: 1 })
    await page.getByText('Paused: 1,005 waiting').waitFor()
    await page.getByRole('button', { name: 'Resume' }).click()
    await expect.poll(() => page.locator('[data-counter="browser-dropped"]').textContent()).toBe('5')
    const rows = page.locator('table.live tbody tr')
    expect(await rows.count()).toBe(1000)
    expect(await rows.first().locator('td').nth(2).innerText()).toBe('1005')
    expect(await rows.last().locator('td').nth(2).innerText()).toBe('6')
    expect(await page.locator('[data-counter="server-dropped"]').textContent()).toBe('0')
  })

  test('Publish: the form\'s message reaches mosquitto_sub, and with "Retain" a later subscriber gets it too', async () => {
    const { consoleUrl, mqttPort } = await startConsoleBroker()
    const page = await chromium.newPage(consoleUrl)
    await signIn(page)
    await page.getByRole('link', { name: 'Publish' }).click()

    const live = mosquittoSubOne(mqttPort, 'line1/cmd')
    await live.ready
    await page.getByLabel('Topic', { exact: true }).fill('line1/cmd')
    await page.getByLabel('Message').fill('{"start":true}')
    await page.getByLabel('QoS').selectOption('1')
    await page.getByLabel('Retain').check()
    await page.getByRole('button', { name: 'Publish' }).click()
    await page.getByRole('status').filter({ hasText: 'Published to line1/cmd' }).waitFor()
    // [MQTT-3.3.1-9]: a subscriber that was there gets it with retain 0.
    expect(await live.line).toBe('0 1 line1/cmd {"start":true}')

    const later = mosquittoSubOne(mqttPort, 'line1/cmd')
    expect(await later.line).toBe('1 1 line1/cmd {"start":true}')
  })

  test('Retained: the retained messages under a filter, each with a Delete button that clears it', async () => {
    const { consoleUrl, mqttUrl } = await startConsoleBroker()
    const pub = await connect(mqttUrl)
    await pub.publishAsync('plant/a/config', '{"interval":5}', { qos: 1, retain: true })
    await pub.publishAsync('plant/b/config', 'b', { qos: 1, retain: true })
    const page = await chromium.newPage(consoleUrl)
    await signIn(page)
    await page.getByRole('link', { name: 'Retained' }).click()
    await page.getByLabel('Topic filter').fill('plant/#')
    await page.getByRole('button', { name: 'Refresh' }).click()
    const rowA = page.getByRole('row').filter({ hasText: 'plant/a/config' })
    await rowA.waitFor()
    await page.getByRole('row').filter({ hasText: 'plant/b/config' }).waitFor()
    await rowA.getByRole('button', { name: 'Delete' }).click()
    await page.getByRole('status').filter({ hasText: 'Deleted the retained message on plant/a/config' }).waitFor()
    expect(await rowA.count()).toBe(0)

    const sub = await connect(mqttUrl)
    const replayed = await retainedBarrier(pub, sub, 'plant/+/config', 'marker/retained')
    expect(replayed.map(m => m.topic)).toEqual(['plant/b/config'])
    expect(inbox(sub).messages).toHaveLength(1)
  })

  test('Rules: the table, a rule\'s page with its source and last error with its input, and "Run test" showing outputs or the error', async () => {
    const { consoleUrl, mqttUrl } = await startConsoleBroker({
      'broken.js': "export const topics = ['broken/#']\nexport function convert (msg) {\n  return {\n",
      'telemetry.js': "export const topics = ['sensors/+/temperature']\nexport function convert (msg) {\n  const reading = JSON.parse(msg.payload)\n  if (typeof reading.value !== 'number') throw new Error('expected {\"value\": <number>}')\n  return { topic: `devices/${msg.topic.split('/')[1]}/telemetry`, payload: { temperature: reading.value } }\n}\n"
    })
    const page = await chromium.newPage(consoleUrl)
    await signIn(page)
    await page.getByRole('link', { name: 'Rules' }).click()
    for (const name of ['Status', 'Matched', 'Outputs', 'Failed', 'p99']) await page.getByRole('columnheader', { name, exact: true }).waitFor()
    await page.getByRole('row').filter({ hasText: 'running' }).getByRole('link', { name: 'telemetry' }).click()
    await page.getByRole('heading', { name: 'Rule telemetry' }).waitFor()
    expect(await page.getByLabel('Source').inputValue()).toContain("export const topics = ['sensors/+/temperature']")
    expect(await page.getByLabel('Source').getAttribute('readonly')).not.toBeNull()

    await page.getByLabel('Topic', { exact: true }).fill('sensors/SN-7/temperature')
    await page.getByLabel('Payload').fill('{"value":21.5}')
    await page.getByRole('button', { name: 'Run test' }).click()
    const outputs = page.getByRole('table', { name: 'Test outputs' })
    await outputs.waitFor()
    expect((await outputs.locator('tbody td').allInnerTexts()).slice(0, 2)).toEqual(['devices/SN-7/telemetry', '{\n  "temperature": 21.5\n}'])

    await page.getByLabel('Payload').fill('{"value":"warm"}')
    await page.getByRole('button', { name: 'Run test' }).click()
    await page.getByRole('alert').filter({ hasText: 'expected {"value": <number>}' }).waitFor()
    expect(await outputs.count()).toBe(0)

    // A message the rule fails on, from a client: its page lists the error with that input.
    const client = await connect(mqttUrl)
    await client.publishAsync('sensors/SN-9/temperature', '{"value":"hot"}', { qos: 1 })
    const lastError = page.locator('ol.errors li').filter({ hasText: 'sensors/SN-9/temperature' })
    await lastError.waitFor()
    expect(await lastError.innerText()).toContain('expected {"value": <number>}')
    expect(await lastError.innerText()).toContain('"value": "hot"')

    // A rule that does not load: failed in the table, its error on its page and from "Run test".
    await page.getByRole('link', { name: 'Rules', exact: true }).click()
    await page.getByRole('row').filter({ hasText: 'failed' }).getByRole('link', { name: 'broken' }).click()
    await page.getByRole('heading', { name: 'Rule broken' }).waitFor()
    await page.getByText(/SyntaxError/).first().waitFor()
    await page.getByLabel('Topic', { exact: true }).fill('broken/x')
    await page.getByRole('button', { name: 'Run test' }).click()
    await page.getByRole('alert').filter({ hasText: 'SyntaxError' }).waitFor()
  })

  test('Clients: a connected MQTT.js client is listed with its subscriptions, and "Disconnect" closes its connection', async () => {
    const { consoleUrl, mqttUrl } = await startConsoleBroker()
    const victim = await connect(mqttUrl, { clientId: 'console-victim' })
    await victim.subscribeAsync('victim/commands/#', { qos: 1 })
    const closed = new Promise<void>(resolve => victim.once('close', () => resolve()))
    const page = await chromium.newPage(consoleUrl)
    await signIn(page)
    await page.getByRole('link', { name: 'Clients' }).click()
    for (const name of ['Client id', 'Username', 'Address', 'Connected since', 'Subscriptions']) await page.getByRole('columnheader', { name, exact: true }).waitFor()
    const row = page.getByRole('row').filter({ hasText: 'console-victim' })
    await row.filter({ hasText: 'victim/commands/#' }).waitFor()
    expect(await row.innerText()).toContain('127.0.0.1')
    await row.getByRole('button', { name: 'Disconnect' }).click()
    await closed
    await page.getByRole('status').filter({ hasText: 'Disconnected console-victim' }).waitFor()
    await expect.poll(() => row.count()).toBe(0)
  })
})
