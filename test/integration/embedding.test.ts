/*
 * The embedding API (docs/embedding.md): the bus (broker.subscribe), events,
 * auth hooks, rules from code, no rules directory, publish() checks. Real
 * sockets and MQTT.js clients; "nothing arrived" is proved by a barrier
 * message published after, never by a sleep.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, onTestFinished, test } from 'vitest'
import { createBroker, type Broker, type BrokerOptions, type ConfigInput, type Message } from '../../src/index.js'
import { tempDir, urlFor } from '../helpers/broker.js'
import { connect, granted, inbox } from '../helpers/client.js'
import { captureLog } from '../helpers/log.js'
import { until } from '../helpers/wait.js'

/** A broker on an ephemeral port, without a rules directory, closed after the test. */
async function embedded (config: ConfigInput = {}, options: BrokerOptions = {}): Promise<Broker> {
  const broker = await createBroker({
    listeners: [{ type: 'tcp', port: 0 }],
    persistence: { type: 'memory' },
    log: { level: 'silent' },
    rules: { dir: null },
    ...config
  }, options)
  onTestFinished(() => broker.close())
  return broker
}

/** Every message a bus subscription receives, with a wait for the first that matches. */
function collect (broker: Broker, filter: string) {
  const messages: Message[] = []
  const waiters: Array<() => void> = []
  const unsubscribe = broker.subscribe(filter, m => {
    messages.push(m)
    for (const w of waiters.splice(0)) w()
  })
  const waitFor = (topic: string) => new Promise<Message>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message on ${topic}; got ${messages.map(m => m.topic).join(', ')}`)), 5000)
    const check = () => {
      const found = messages.find(m => m.topic === topic)
      if (found) { clearTimeout(timer); resolve(found) } else waiters.push(check)
    }
    check()
  })
  return { messages, waitFor, unsubscribe }
}

const FORWARD_RULE = `
export const topics = ['in/#']
export function convert (msg) {
  return { topic: 'out/' + msg.topic.slice(3), payload: { seen: msg.payload } }
}
`

describe('broker.subscribe: one bus for every origin', () => {
  test('sees client, API and rule messages, each with its origin', async () => {
    const broker = await embedded()
    await broker.rules.add({ name: 'forward', source: FORWARD_RULE })
    const bus = collect(broker, '#')
    const client = await connect(urlFor(broker), { clientId: 'sensor-1' })
    await client.publishAsync('in/a', 'hello', { qos: 1 })
    await broker.publish({ topic: 'api/x', payload: { n: 1 }, qos: 1, retain: false })

    expect(await bus.waitFor('in/a')).toMatchObject({ payload: Buffer.from('hello'), qos: 1, retain: false, origin: { kind: 'client', clientId: 'sensor-1', username: null, chain: [] } })
    const output = await bus.waitFor('out/a')
    expect(output.origin).toEqual({ kind: 'rule', clientId: 'sensor-1', username: null, rule: 'forward', chain: ['forward'] })
    expect(JSON.parse(output.payload.toString())).toEqual({ seen: 'hello' })
    expect(await bus.waitFor('api/x')).toMatchObject({ payload: Buffer.from('{"n":1}'), qos: 1, origin: { kind: 'api', clientId: null, chain: [] } })
  })

  test('$SYS/ is seen only by a filter that names it, with origin broker', async () => {
    const broker = await embedded()
    const sys = collect(broker, '$SYS/switchyard/rules/+')
    const all = collect(broker, '#')
    await broker.rules.add({ name: 'forward', source: FORWARD_RULE })
    expect((await sys.waitFor('$SYS/switchyard/rules/forward')).origin.kind).toBe('broker')
    await broker.publish({ topic: 'barrier', payload: '' })
    await all.waitFor('barrier')
    expect(all.messages.map(m => m.topic)).toEqual(['barrier'])
  })

  test('unsubscribe stops the handler; other subscriptions go on', async () => {
    const broker = await embedded()
    const stopped = collect(broker, 'a/#')
    const barrier = collect(broker, 'barrier')
    await broker.publish({ topic: 'a/1', payload: 'before' })
    await stopped.waitFor('a/1')
    stopped.unsubscribe()
    stopped.unsubscribe() // idempotent
    const client = await connect(urlFor(broker))
    await client.publishAsync('a/2', 'after', { qos: 1 })
    await broker.publish({ topic: 'a/3', payload: 'after' })
    await client.publishAsync('barrier', '', { qos: 1 })
    await barrier.waitFor('barrier')
    expect(stopped.messages.map(m => m.topic)).toEqual(['a/1'])
  })

  test('a handler that throws is logged and costs only itself', async () => {
    const log = captureLog('error')
    const broker = await embedded({}, { logger: log.logger })
    broker.subscribe('t', () => { throw new Error('handler bug') })
    broker.subscribe('t', async () => { throw new Error('async handler bug') })
    const bus = collect(broker, 't')
    const client = await connect(urlFor(broker))
    await client.subscribeAsync('t')
    await broker.publish({ topic: 't', payload: 'x' })
    await bus.waitFor('t')
    await inbox(client).waitFor(1)
    await expect.poll(() => log.lines.filter(l => l.msg === 'message handler failed').map(l => l.err)).toEqual(['handler bug', 'async handler bug'])
  })

  test('a filter MQTT forbids is ERR_INVALID_FILTER', async () => {
    const broker = await embedded()
    expect(() => broker.subscribe('a/#/b', () => {})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_FILTER' }))
    expect(() => broker.subscribe('', () => {})).toThrow(expect.objectContaining({ code: 'ERR_INVALID_FILTER' }))
  })
})

describe('broker.on: events', () => {
  test('clientConnect, subscribe, publish, unsubscribe and clientDisconnect, in order; off() stops a listener', async () => {
    const broker = await embedded()
    const seen: string[] = []
    const done = new Promise<void>(resolve => {
      broker.on('clientConnect', c => { seen.push(`connect ${c.clientId} clean=${c.clean}`) })
      broker.on('subscribe', (c, subs) => { seen.push(`subscribe ${c.clientId} ${subs.map(s => `${s.filter}@${s.qos}`).join(',')}`) })
      broker.on('publish', m => { if (m.origin.kind !== 'broker') seen.push(`publish ${m.topic} ${m.origin.kind}`) })
      broker.on('unsubscribe', (c, filters) => { seen.push(`unsubscribe ${c.clientId} ${filters.join(',')}`) })
      broker.on('clientDisconnect', c => {
        seen.push(`disconnect ${c.clientId} ${c.reason}`)
        resolve()
      })
    })
    let offCalls = 0
    const off = broker.on('publish', () => { offCalls++ })
    off()
    const client = await connect(urlFor(broker), { clientId: 'ev-1' })
    await client.subscribeAsync('e/#', { qos: 1 })
    // The PUBACK may overtake the 'publish' event (it goes once the message is stored): wait for the event.
    const published = new Promise<void>(resolve => { const stop = broker.on('publish', m => { if (m.topic === 'e/1') { stop(); resolve() } }) })
    await client.publishAsync('e/1', 'x', { qos: 1 })
    await published
    await client.unsubscribeAsync('e/#')
    await client.endAsync()
    await done
    expect(seen).toEqual(['connect ev-1 clean=true', 'subscribe ev-1 e/#@1', 'publish e/1 client', 'unsubscribe ev-1 e/#', 'disconnect ev-1 DISCONNECT'])
    expect(offCalls).toBe(0)
  })

  test('an async listener that rejects is logged and costs only itself', async () => {
    const log = captureLog('error')
    const broker = await embedded({ log: { level: 'error' } }, { logger: log.logger })
    const seen: string[] = []
    broker.on('clientConnect', async () => { throw new Error('listener rejected') })
    broker.on('clientConnect', c => { seen.push(c.clientId) })
    await connect(urlFor(broker), { clientId: 'ev-async' })
    await until(() => log.text().includes('listener rejected'), 'the rejection to be logged')
    expect(seen).toEqual(['ev-async'])
    // The broker still serves.
    await expect(connect(urlFor(broker))).resolves.toBeDefined()
  })

  test('an unknown event name is a TypeError', async () => {
    const broker = await embedded()
    expect(() => broker.on('connect' as 'clientConnect', () => {})).toThrow(TypeError)
  })
})

describe('hooks: after the password file and the ACL', () => {
  test('authenticate allows, denies (CONNACK 5), and a hook that throws denies and is logged', async () => {
    const log = captureLog('error')
    const calls: string[] = []
    const broker = await embedded({}, {
      logger: log.logger,
      hooks: {
        authenticate: async ({ clientId, username, password }) => {
          calls.push(`${clientId}:${username}:${password?.toString()}`)
          if (clientId === 'throws') throw new Error('directory down')
          return password?.toString() === 'letmein'
        }
      }
    })
    await connect(urlFor(broker), { clientId: 'good', username: 'u', password: 'letmein' })
    await expect(connect(urlFor(broker), { clientId: 'bad', username: 'u', password: 'nope' })).rejects.toMatchObject({ code: 5 })
    await expect(connect(urlFor(broker), { clientId: 'throws' })).rejects.toMatchObject({ code: 5 })
    expect(calls).toEqual(['good:u:letmein', 'bad:u:nope', 'throws:null:undefined'])
    expect(broker.stats().authFailures).toBe(2)
    expect(log.lines.some(l => l.hook === 'authenticate' && l.err === 'directory down')).toBe(true)
  })

  test('authorizePublish: denied (false, async, or thrown) is acknowledged and dropped, like an ACL deny', async () => {
    const broker = await embedded({}, {
      hooks: {
        authorizePublish: async (client, message) => {
          if (message.topic === 'boom') throw new Error('hook bug')
          return !message.topic.startsWith('secret/') && client.clientId === 'pub'
        }
      }
    })
    const watcher = await connect(urlFor(broker))
    await watcher.subscribeAsync(['secret/#', 'boom', 'open'], { qos: 1 })
    const bus = collect(broker, '#')
    const pub = await connect(urlFor(broker), { clientId: 'pub' })
    await pub.publishAsync('secret/a', 'x', { qos: 1 }) // PUBACK all the same [MQTT-3.3.5]
    await pub.publishAsync('boom', 'x', { qos: 0 })
    await pub.publishAsync('open', 'barrier', { qos: 1 })
    expect((await inbox(watcher).waitFor(1)).map(m => m.topic)).toEqual(['open'])
    await bus.waitFor('open')
    expect(bus.messages.map(m => m.topic)).toEqual(['open'])
    expect(broker.stats().deniedPublishes).toBe(2)
    // broker.publish() is the application's own: not authorized by the hook
    await broker.publish({ topic: 'secret/b', payload: 'x', qos: 1 })
    expect((await inbox(watcher).waitFor(2))[1]!.topic).toBe('secret/b')
  })

  test('authorizeSubscribe: denied is SUBACK 0x80; a throw denies; the ACL is asked first', async () => {
    const dir = tempDir()
    const aclFile = path.join(dir, 'acl')
    writeFileSync(aclFile, 'topic readwrite #\ntopic deny acl-denied/#\n')
    const asked: string[] = []
    const broker = await embedded({ auth: { aclFile } }, {
      hooks: {
        authorizeSubscribe: (_client, { filter }) => {
          asked.push(filter)
          if (filter === 'boom') throw new Error('hook bug')
          return Promise.resolve(filter !== 'hook-denied')
        }
      }
    })
    const client = await connect(urlFor(broker))
    expect(await granted(client, ['ok', 'hook-denied', 'boom', 'acl-denied/x'])).toEqual([0, 128, 128, 128])
    expect(asked).toEqual(['ok', 'hook-denied', 'boom'])
    expect(broker.stats().deniedSubscriptions).toBe(3)
  })

  test('hooks are not config: a config key "hooks" says where they go', async () => {
    await expect(createBroker({ hooks: {} } as ConfigInput)).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      problems: ['hooks: not a config key; pass hooks as an option: createBroker(config, { hooks })']
    })
  })
})

describe('rules from code', () => {
  test('add() loads with the same status as a file; a bad rule is failed; remove() ends it', async () => {
    const broker = await embedded()
    const running = await broker.rules.add({ name: 'forward', source: FORWARD_RULE })
    expect(running).toMatchObject({ name: 'forward', file: 'code:forward', status: 'running', topics: ['in/#'], error: null })
    const failed = await broker.rules.add({ name: 'broken', source: 'export const topics = ["x"]' })
    expect(failed).toMatchObject({ name: 'broken', status: 'failed', error: expect.stringContaining('convert') })
    expect(broker.rules().map(r => r.name)).toEqual(['broken', 'forward'])

    const bus = collect(broker, '#')
    expect(await broker.rules.remove('forward')).toBe(true)
    expect(await broker.rules.remove('forward')).toBe(false)
    expect(broker.rules().map(r => r.name)).toEqual(['broken'])
    await broker.publish({ topic: 'in/a', payload: 'x' })
    await broker.publish({ topic: 'barrier', payload: '' })
    await bus.waitFor('barrier')
    expect(bus.messages.map(m => m.topic)).toEqual(['in/a', 'barrier'])
  })

  test('add() replaces a code rule; a failed replacement keeps the previous version running', async () => {
    const broker = await embedded()
    await broker.rules.add({ name: 'r', source: FORWARD_RULE })
    const replaced = await broker.rules.add({ name: 'r', source: FORWARD_RULE.replace("'in/#'", "'in2/#'") })
    expect(replaced).toMatchObject({ status: 'running', topics: ['in2/#'] })
    const kept = await broker.rules.add({ name: 'r', source: 'syntax error (' })
    expect(kept).toMatchObject({ status: 'running', topics: ['in2/#'], error: expect.stringContaining('previous version keeps running') })
  })

  test('a name that cannot be a rule, or that the rules directory holds, is ERR_INVALID_RULE', async () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'fromfile.js'), FORWARD_RULE)
    const broker = await embedded({ rules: { dir } })
    expect(broker.rules().map(r => r.name)).toEqual(['fromfile'])
    await expect(broker.rules.add({ name: 'a/b', source: FORWARD_RULE })).rejects.toMatchObject({ code: 'ERR_INVALID_RULE' })
    await expect(broker.rules.add({ name: 'x', source: 42 as unknown as string })).rejects.toMatchObject({ code: 'ERR_INVALID_RULE' })
    await expect(broker.rules.add({ name: 'fromfile', source: FORWARD_RULE })).rejects.toMatchObject({ code: 'ERR_INVALID_RULE' })
    await expect(broker.rules.remove('fromfile')).rejects.toMatchObject({ code: 'ERR_INVALID_RULE' })
  })

  test('rules: { dir: null } creates and watches no directory', async () => {
    const base = tempDir()
    const broker = await embedded({ rules: { dir: null } }, { baseDir: base })
    expect(broker.config.rules.dir).toBeNull()
    expect(readdirSync(base)).toEqual([])
    expect(existsSync(path.join(base, 'rules'))).toBe(false)
    expect(broker.rules()).toEqual([])
    expect(broker.stats().rulesHostPid).toBeUndefined()
  })

  test('a rules.add() still loading when the broker closes settles, as failed', async () => {
    const broker = await embedded()
    const adding = broker.rules.add({ name: 'late', source: FORWARD_RULE })
    await broker.close()
    const view = await adding.catch((err: { code?: string }) => ({ status: err.code }))
    expect(['failed', 'ERR_CLOSED', 'running']).toContain(view.status)
  })

  test('add() after close() is ERR_CLOSED', async () => {
    const broker = await embedded()
    await broker.close()
    await expect(broker.rules.add({ name: 'r', source: FORWARD_RULE })).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })
})

describe('publish() checks its input as a client PUBLISH is checked', () => {
  test('a wildcard topic, a QoS outside 0-2, a payload that is not bytes or JSON: coded errors, nothing published', async () => {
    const broker = await embedded()
    const bus = collect(broker, '#')
    const bad: Array<[object, string]> = [
      [{ topic: 'x/#', payload: 'x' }, 'ERR_INVALID_TOPIC'],
      [{ topic: 'x/+/y', payload: 'x' }, 'ERR_INVALID_TOPIC'],
      [{ topic: 'x', payload: 'x', qos: 5 }, 'ERR_INVALID_QOS'],
      [{ topic: 'x', payload: 'x', qos: -1 }, 'ERR_INVALID_QOS'],
      [{ topic: 'x', payload: 42 }, 'ERR_INVALID_PAYLOAD'],
      [{ topic: 'x', payload: null }, 'ERR_INVALID_PAYLOAD'],
      [{ topic: 'x', payload: new Date(0) }, 'ERR_INVALID_PAYLOAD'],
      [{ topic: 'x', payload: Buffer.alloc(2 * 1024 * 1024) }, 'ERR_INVALID_PAYLOAD']
    ]
    for (const [message, code] of bad) {
      await expect(broker.publish(message as Parameters<Broker['publish']>[0]), JSON.stringify(message).slice(0, 60)).rejects.toMatchObject({ code, name: 'SwitchyardError' })
    }
    await broker.publish({ topic: 'barrier', payload: '' })
    await bus.waitFor('barrier')
    expect(bus.messages.map(m => m.topic)).toEqual(['barrier'])
  })

  test('a plain object or array is sent as JSON; strings, Buffers and Uint8Arrays as bytes', async () => {
    const broker = await embedded()
    const client = await connect(urlFor(broker))
    await client.subscribeAsync('p/#')
    await broker.publish({ topic: 'p/object', payload: { a: 1, b: [true] } })
    await broker.publish({ topic: 'p/array', payload: [1, 'two'] })
    await broker.publish({ topic: 'p/string', payload: 'héllo' })
    await broker.publish({ topic: 'p/bytes', payload: new Uint8Array([0, 255]) })
    const got = await inbox(client).waitFor(4)
    expect(got.map(m => [m.topic, m.packet.payload.toString('hex')])).toEqual([
      ['p/object', Buffer.from('{"a":1,"b":[true]}').toString('hex')],
      ['p/array', Buffer.from('[1,"two"]').toString('hex')],
      ['p/string', Buffer.from('héllo').toString('hex')],
      ['p/bytes', '00ff']
    ])
  })
})
