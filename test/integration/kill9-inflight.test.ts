import { expect, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startCli } from '../helpers/cli.js'
import { publishUntilKilled, random } from '../helpers/kill9.js'

/*
 * Issue 9, finding 1: Aedes 1.2 wrote a QoS 1 PUBACK before storing the
 * message for offline subscribers, so a kill -9 with messages in flight lost
 * acknowledged messages (63-682 of ~2,600). Here a publisher keeps 500 QoS 1
 * messages in flight while the broker is SIGKILLed at a random point, three
 * times; after each restart the offline persistent subscriber must receive
 * every message whose PUBACK arrived.
 */
const ROUNDS = 3

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
