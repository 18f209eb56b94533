import { readFileSync } from 'node:fs'
import net from 'node:net'
import mqttPacket from 'mqtt-packet'
import { describe, expect, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { runCli, startCli } from '../helpers/cli.js'

const memoryOnPort0 = { listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' } }

describe('switchyard CLI', () => {
  test('--help and --version', async () => {
    const dir = tempDir()
    const help = await runCli(['--help'], dir)
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/Usage: switchyard \[command\]/)
    const version = await runCli(['--version'], dir)
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
    expect(version).toMatchObject({ code: 0, stdout: `${pkg.version}\n` })
  })

  test('check exits 0 on a valid config, and 1 listing every problem on a bad one', async () => {
    const dir = tempDir()
    const good = await runCli(['check', '--config', new URL('../../switchyard.example.json', import.meta.url).pathname], dir)
    expect(good.code).toBe(0)
    const { writeFileSync } = await import('node:fs')
    writeFileSync(`${dir}/bad.json`, JSON.stringify({ limits: { maxConnections: 0 }, log: { lvl: 'x' } }))
    const bad = await runCli(['check', '--config', 'bad.json'], dir)
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('limits.maxConnections: must be >= 1; got 0')
    expect(bad.stderr).toContain('log.lvl: unknown key')
  })

  test('a config error is printed with its code, as docs/errors.md says', async () => {
    const dir = tempDir()
    const { writeFileSync } = await import('node:fs')
    writeFileSync(`${dir}/switchyard.json`, JSON.stringify({ log: { lvl: 'x' } }))
    for (const args of [['check'], ['start']]) {
      const result = await runCli(args, dir)
      expect(result.code).toBe(1)
      expect(result.stderr).toMatch(/^switchyard: ERR_CONFIG_INVALID: invalid configuration in .*switchyard\.json:\n {2}log\.lvl: unknown key/)
    }
  })

  test('an unknown command exits 2', async () => {
    expect((await runCli(['frobnicate'], tempDir())).code).toBe(2)
  })

  test('start logs one line per listener with the port actually bound, serves, and exits 0 on SIGTERM', async () => {
    const dir = tempDir()
    const cli = await startCli(dir, { ...memoryOnPort0, listeners: [{ type: 'tcp', port: 0 }, { type: 'ws', port: 0 }] })
    const listening = cli.logs.filter(l => typeof l.listener === 'string')
    expect(listening.map(l => l.listener)).toEqual(['tcp', 'ws'])
    expect(listening[0]!.msg).toBe(`listening on mqtt://127.0.0.1:${cli.ports.tcp}`)
    expect(cli.ports.tcp).toBeGreaterThan(0)

    const client = await connect(`mqtt://127.0.0.1:${cli.ports.tcp}`)
    await client.subscribeAsync('t')
    await client.publishAsync('t', 'hello', { qos: 1 })
    expect((await inbox(client).waitFor(1))[0]!.payload).toBe('hello')

    cli.proc.kill('SIGTERM')
    expect(await cli.exited).toBe(0)
    expect(cli.logs.map(l => l.msg)).toContain('broker closed')
  })

  test('SIGINT closes gracefully too', async () => {
    const cli = await startCli(tempDir(), memoryOnPort0)
    cli.proc.kill('SIGINT')
    expect(await cli.exited).toBe(0)
  })

  test('a port already in use fails the start with ERR_LISTEN and exit code 1', async () => {
    const blocker = net.createServer().listen(0, '127.0.0.1')
    await new Promise(resolve => blocker.once('listening', resolve))
    try {
      const port = (blocker.address() as net.AddressInfo).port
      const dir = tempDir()
      const { writeFileSync } = await import('node:fs')
      writeFileSync(`${dir}/switchyard.json`, JSON.stringify({ ...memoryOnPort0, listeners: [{ type: 'tcp', port }] }))
      const result = await runCli([], dir)
      expect(result.code).toBe(1)
      expect(result.stderr).toContain(`ERR_LISTEN: tcp listener on 127.0.0.1:${port}: EADDRINUSE`)
    } finally {
      blocker.close()
    }
  })

  // Aedes 1.2 crashed with a stack overflow in 1 of 3 runs when closed
  // during a QoS 0 flood (mqemitter#193). Our shutdown must exit 0 every time.
  test.each([1, 2, 3])('SIGTERM during a QoS 0 flood exits 0 (run %i)', async () => {
    const cli = await startCli(tempDir(), memoryOnPort0)
    const port = cli.ports.tcp!
    const sub = await connect(`mqtt://127.0.0.1:${port}`)
    await sub.subscribeAsync('flood/#')
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    await new Promise(resolve => socket.once('connect', resolve))
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'flooder', keepalive: 0 }))
    // The CONNACK first (the broker's first bytes): Aedes closes a client that
    // sends more than 42 packets before it, and then there was no flood at all.
    await new Promise(resolve => socket.once('data', resolve))
    const batch = Buffer.concat(Array.from({ length: 500 }, (_, i) =>
      mqttPacket.generate({ cmd: 'publish', topic: `flood/${i % 10}`, payload: Buffer.alloc(64), qos: 0, retain: false, dup: false })))
    let flooding = true
    const pump = () => { while (flooding && socket.write(batch)) { /* fill the socket */ } if (flooding) socket.once('drain', pump) }
    pump()
    // the flood is under way: thousands of messages routed, more in flight
    await inbox(sub).waitFor(5000, 15_000)
    cli.proc.kill('SIGTERM')
    const code = await cli.exited
    flooding = false
    socket.destroy()
    expect(cli.stderr()).not.toMatch(/Maximum call stack/)
    expect(code).toBe(0)
  })
})
