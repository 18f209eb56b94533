import { execFile, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'
import { generateClientCertificate } from '../../src/listeners/certs.js'
import { startBroker, tempDir, testCerts, urlFor } from '../helpers/broker.js'
import { barrier, retainedBarrier } from '../helpers/barrier.js'
import { connect, granted, inbox } from '../helpers/client.js'
import { runCli } from '../helpers/cli.js'
import { captureLog } from '../helpers/log.js'
import { startWithRules, until } from '../helpers/rules.js'
import { listening } from '../helpers/wait.js'

const run = promisify(execFile)
const has = async (bin: string) => run('sh', ['-c', `command -v ${bin}`]).then(() => true, () => false)
const haveMosquitto = await has('mosquitto') && await has('mosquitto_passwd') && await has('mosquitto_pub')

/** A password file made by our own tool: alice/wonderland, bob/builder. */
async function passwordFile (dir: string): Promise<string> {
  const file = path.join(dir, 'passwords')
  expect((await runCli(['passwd', '-c', '-b', file, 'alice', 'wonderland'], dir)).code).toBe(0)
  expect((await runCli(['passwd', '-b', file, 'bob', 'builder'], dir)).code).toBe(0)
  return file
}

const refusedWith = (code: number) => expect.objectContaining({ code })

describe('password authentication', () => {
  test('with a password file: users get in, wrong passwords, unknown users and anonymous clients get CONNACK 5', async () => {
    const dir = tempDir()
    const log = captureLog()
    const broker = await startBroker({ auth: { passwordFile: await passwordFile(dir) } }, { logger: log.logger })
    const url = urlFor(broker)
    await expect(connect(url, { username: 'alice', password: 'wonderland' })).resolves.toBeDefined()
    await expect(connect(url, { username: 'alice', password: 'wrong-password' })).rejects.toEqual(refusedWith(5))
    await expect(connect(url, { username: 'mallory', password: 'wonderland' })).rejects.toEqual(refusedWith(5))
    await expect(connect(url)).rejects.toEqual(refusedWith(5))
    expect(broker.stats().authFailures).toBe(3)
    const failures = log.lines.filter(l => l.msg === 'authentication failed')
    expect(failures.map(l => [l.username, l.reason])).toEqual([
      ['alice', 'bad username or password'], ['mallory', 'bad username or password'], [undefined, 'anonymous clients are not allowed']
    ])
    expect(log.text()).not.toContain('wrong-password')
    expect(log.text()).not.toContain('wonderland')
  })

  test('allowAnonymous: true with a password file lets both in', async () => {
    const dir = tempDir()
    const broker = await startBroker({ auth: { passwordFile: await passwordFile(dir), allowAnonymous: true } })
    await expect(connect(urlFor(broker))).resolves.toBeDefined()
    await expect(connect(urlFor(broker), { username: 'bob', password: 'builder' })).resolves.toBeDefined()
    await expect(connect(urlFor(broker), { username: 'bob', password: 'nope' })).rejects.toEqual(refusedWith(5))
  })

  test('the authenticated username reaches rules as msg.username', async () => {
    const dir = tempDir()
    const { broker } = await startWithRules({ 'who.js': `export const topics = ['who']; export function convert (m) { return { topic: 'who/is', payload: String(m.username) } }` },
      { config: { auth: { passwordFile: await passwordFile(dir) } } })
    const alice = await connect(urlFor(broker), { username: 'alice', password: 'wonderland' })
    await alice.subscribeAsync('who/is')
    await alice.publishAsync('who', 'x')
    expect((await inbox(alice).waitFor(1))[0]!.payload).toBe('alice')
  })
})

describe.skipIf(!haveMosquitto)('Mosquitto compatibility, both directions', () => {
  test('a file made by the real mosquitto_passwd works unchanged', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'mosquitto.passwd')
    await run('mosquitto_passwd', ['-c', '-b', file, 'alice', 's3cret'])
    await run('mosquitto_passwd', ['-H', 'sha512', '-b', file, 'carol', 'legacy'])
    const broker = await startBroker({ auth: { passwordFile: file } })
    await expect(connect(urlFor(broker), { username: 'alice', password: 's3cret' })).resolves.toBeDefined()
    await expect(connect(urlFor(broker), { username: 'carol', password: 'legacy' })).resolves.toBeDefined()
    await expect(connect(urlFor(broker), { username: 'alice', password: 'legacy' })).rejects.toEqual(refusedWith(5))
  })

  test('a file made by switchyard passwd works in a real Mosquitto', async () => {
    const dir = tempDir()
    const file = await passwordFile(dir)
    const port = await freePort()
    const conf = path.join(dir, 'mosquitto.conf')
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${file}\nuser root\n`)
    const mosquitto = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    mosquitto.stderr.on('data', d => { stderr += d })
    try {
      await until(() => listening(port), `mosquitto to accept connections on ${port}: ${stderr}`)
      const pub = (user: string, password: string) => run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', password, '-t', 't', '-m', 'x'])
      await expect(pub('alice', 'wonderland')).resolves.toBeDefined()
      await expect(pub('bob', 'builder')).resolves.toBeDefined()
      await expect(pub('alice', 'builder')).rejects.toMatchObject({ stderr: expect.stringMatching(/not authori[sz]ed/i) })
    } finally {
      mosquitto.kill('SIGTERM')
    }
  })
})

describe('switchyard passwd', () => {
  test('prompts twice (here from a pipe), refuses a mismatch, deletes, and hashes plain files with -U', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'pw')
    const prompt = (input: string, args: string[]) => new Promise<number | null>(resolve => {
      const p = spawn(process.execPath, ['--no-node-snapshot', new URL('../../bin/switchyard.js', import.meta.url).pathname, 'passwd', ...args], { cwd: dir })
      p.stdin.end(input)
      p.on('close', resolve)
    })
    expect(await prompt('first\nfirst\n', ['-c', file, 'erin'])).toBe(0)
    expect(await prompt('one\ntwo\n', [file, 'frank'])).toBe(1)
    expect(readFileSync(file, 'utf8')).toMatch(/^erin:\$7\$10000\$/)
    expect(readFileSync(file, 'utf8')).not.toContain('frank')

    expect((await runCli(['passwd', '-b', file, 'gina', 'pw'], dir)).code).toBe(0)
    expect((await runCli(['passwd', '-D', file, 'erin'], dir)).code).toBe(0)
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean).map(l => l.split(':')[0])).toEqual(['gina'])
    expect((await runCli(['passwd', '-D', file, 'nobody'], dir)).code).toBe(1)

    const plain = path.join(dir, 'plain')
    writeFileSync(plain, '# site users\nhal:open sesame\n')
    expect((await runCli(['passwd', '-U', plain], dir)).code).toBe(0)
    const hashed = readFileSync(plain, 'utf8')
    expect(hashed).toMatch(/^# site users\nhal:\$7\$/)
    const broker = await startBroker({ auth: { passwordFile: plain } })
    await expect(connect(urlFor(broker), { username: 'hal', password: 'open sesame' })).resolves.toBeDefined()
  })
})

const ACL = `
topic read public/#

user alice
topic readwrite devices/alice/#
topic deny devices/alice/secret

user bob
topic read devices/#
topic write public/#

pattern write status/%u
`

describe('ACL over real connections', () => {
  async function aclBroker () {
    const dir = tempDir()
    const aclFile = path.join(dir, 'acl')
    writeFileSync(aclFile, ACL)
    const broker = await startBroker({ auth: { passwordFile: await passwordFile(dir), aclFile, allowAnonymous: true } })
    const as = (user?: 'alice' | 'bob') => connect(urlFor(broker), user ? { username: user, password: user === 'alice' ? 'wonderland' : 'builder' } : {})
    return { broker, as }
  }

  test('a will the client may not publish is refused at CONNECT with CONNACK 5, as Mosquitto 2 does; an allowed one connects', async () => {
    const { broker, as } = await aclBroker()
    const will = (topic: string) => ({ username: 'alice', password: 'wonderland', will: { topic, payload: Buffer.from('gone'), qos: 1 as const, retain: true } })
    const url = urlFor(broker)
    // Checked when given: after a crash, another run publishes the stored will with no client to check it against.
    await expect(connect(url, will('devices/bob/cmd'))).rejects.toEqual(refusedWith(5))
    await expect(connect(url, will('devices/alice/secret'))).rejects.toEqual(refusedWith(5))
    await expect(connect(url, will('$SYS/broker/uptime'))).rejects.toEqual(refusedWith(5))
    await expect(connect(url, will('status/alice'))).resolves.toBeDefined()
    expect(broker.stats().authFailures).toBe(3)
    await expect(as('alice')).resolves.toBeDefined()
  })

  test('a denied publish is acknowledged and dropped, and the connection stays', async () => {
    const { broker, as } = await aclBroker()
    const bob = await as('bob')
    await bob.subscribeAsync('devices/#')
    const alice = await as('alice')
    await alice.publishAsync('devices/bob/cmd', 'not yours', { qos: 1 }) // PUBACK arrives
    await alice.publishAsync('devices/alice/temp', '21', { qos: 1 })
    await inbox(bob).waitFor(1)
    const got = await barrier(alice, bob, 'devices/alice/barrier')
    expect(got.map(m => m.topic)).toEqual(['devices/alice/temp'])
    expect(alice.connected).toBe(true)
    expect(broker.stats().deniedPublishes).toBe(1)
  })

  test('a denied subscription gets SUBACK 0x80', async () => {
    const { as } = await aclBroker()
    const alice = await as('alice')
    expect(await granted(alice, ['#', 'devices/alice/#', 'devices/alice/secret'])).toEqual([128, 0, 128])
  })

  test('a denied retained publish is never stored', async () => {
    const { as } = await aclBroker()
    const alice = await as('alice')
    await alice.publishAsync('devices/alice/secret', 'hidden', { qos: 1, retain: true }) // alice may not write it: dropped
    await alice.publishAsync('devices/alice/temp', 'retained-temp', { qos: 1, retain: true })
    const alice2 = await as('alice')
    await alice2.subscribeAsync('devices/alice/#', { qos: 1 })
    expect((await inbox(alice2).waitFor(1)).map(m => [m.topic, m.retain])).toEqual([['devices/alice/temp', true]])
  })

  test('delivery is filtered per message: a denied topic inside a granted filter, live or retained', async () => {
    const { broker, as } = await aclBroker()
    const alice = await as('alice')
    await alice.subscribeAsync('devices/alice/#')
    await broker.publish({ topic: 'devices/alice/secret', payload: 'from the broker', qos: 1, retain: true })
    await broker.publish({ topic: 'devices/alice/open', payload: 'ok', qos: 1 })
    await inbox(alice).waitFor(1)
    const got = await barrier(broker, alice, 'devices/alice/barrier')
    expect(got.map(m => m.topic)).toEqual(['devices/alice/open'])
    // and the retained secret is not replayed to her either (the marker, two levels down, is not under devices/alice/+)
    const again = await as('alice')
    const replayed = await retainedBarrier(broker, again, 'devices/alice/+', 'devices/alice/barrier/retained')
    expect(replayed.map(m => m.topic)).toEqual([])
  })

  test('patterns (%u) and anonymous lines apply', async () => {
    const { broker, as } = await aclBroker()
    const anon = await as()
    await anon.subscribeAsync('public/#')
    const bob = await as('bob')
    await bob.publishAsync('status/bob', 'online', { qos: 1 }) // pattern write status/%u: allowed
    await bob.publishAsync('status/alice', 'forged', { qos: 1 }) // not his: denied
    await bob.publishAsync('public/news', 'hello', { qos: 1 })
    expect(broker.stats().deniedPublishes).toBe(1)
    expect((await inbox(anon).waitFor(1)).map(m => m.topic)).toEqual(['public/news'])
    expect(await granted(anon, 'devices/#')).toEqual([128])
  })
})

describe('client certificates', () => {
  test('requestCert: no certificate, no handshake; a certificate from the CA gets in, with its CN as username for the ACL', async () => {
    const certs = testCerts()
    const client = generateClientCertificate(certs.dir, 'sensor-1')
    const dir = tempDir()
    const aclFile = path.join(dir, 'acl')
    writeFileSync(aclFile, 'user sensor-1\ntopic readwrite devices/sensor-1/#\n')
    const broker = await startBroker({
      listeners: [{ type: 'tls', port: 0, cert: certs.cert, key: certs.key, ca: certs.ca, requestCert: true, useIdentityAsUsername: true }],
      auth: { aclFile }
    })
    const url = urlFor(broker, 'tls')
    await expect(connect(url, { connectTimeout: 2000 })).rejects.toThrow()
    const sensor = await connect(url, { cert: readFileSync(client.cert), key: readFileSync(client.key) })
    expect(await granted(sensor, ['devices/#', 'devices/sensor-1/#'])).toEqual([128, 0])
    await sensor.publishAsync('devices/sensor-1/temp', '20', { qos: 1 })
    await sensor.publishAsync('devices/sensor-2/temp', 'not mine', { qos: 1 })
    await inbox(sensor).waitFor(1)
    const got = await barrier(sensor, sensor, 'devices/sensor-1/barrier')
    expect(got.map(m => m.topic)).toEqual(['devices/sensor-1/temp'])
  })
})

describe('reload without dropping anyone', () => {
  test('broker.reload() picks up a new user and a new ACL; a bad file keeps the old state; clients stay', async () => {
    const dir = tempDir()
    const file = await passwordFile(dir)
    const aclFile = path.join(dir, 'acl')
    writeFileSync(aclFile, 'user alice\ntopic readwrite a/#\n')
    const log = captureLog()
    const broker = await startBroker({ auth: { passwordFile: file, aclFile } }, { logger: log.logger })
    const alice = await connect(urlFor(broker), { username: 'alice', password: 'wonderland' })
    let dropped = false
    alice.on('close', () => { dropped = true })

    expect((await runCli(['passwd', '-b', file, 'carol', 'new'], dir)).code).toBe(0)
    writeFileSync(aclFile, 'user alice\ntopic readwrite a/#\ntopic readwrite b/#\nuser carol\ntopic read a/#\n')
    expect(await broker.reload()).toEqual({ ok: true, problems: [] })
    await expect(connect(urlFor(broker), { username: 'carol', password: 'new' })).resolves.toBeDefined()
    expect(await granted(alice, 'b/x')).toEqual([0]) // the new ACL applies to a connected client

    writeFileSync(file, 'alice:not-a-hash\n')
    const result = await broker.reload()
    expect(result).toEqual({ ok: false, problems: [`${file}:1: user alice: the password is not hashed; hash the file with \`switchyard passwd -U <file>\` (or mosquitto_passwd -U)`] })
    expect(log.lines.some(l => l.msg === 'reload failed in part; the previous state is kept where it failed')).toBe(true)
    await expect(connect(urlFor(broker), { username: 'carol', password: 'new' })).resolves.toBeDefined()
    expect(dropped).toBe(false)
  })

  test('reload swaps the TLS certificate for new connections', async () => {
    const dir = tempDir()
    const first = tempDir()
    const second = tempDir()
    const { generateDevCertificates } = await import('../../src/listeners/certs.js')
    const caA = generateDevCertificates(first)
    const caB = generateDevCertificates(second)
    const cert = path.join(dir, 'server.crt')
    const key = path.join(dir, 'server.key')
    writeFileSync(cert, readFileSync(path.join(first, 'server.crt')))
    writeFileSync(key, readFileSync(path.join(first, 'server.key')))
    const broker = await startBroker({ listeners: [{ type: 'tls', port: 0, cert, key }] })
    const url = urlFor(broker, 'tls')
    const old = await connect(url, { ca: readFileSync(caA) })
    writeFileSync(cert, readFileSync(path.join(second, 'server.crt')))
    writeFileSync(key, readFileSync(path.join(second, 'server.key')))
    expect((await broker.reload()).ok).toBe(true)
    await expect(connect(url, { ca: readFileSync(caA), connectTimeout: 2000 })).rejects.toThrow()
    await expect(connect(url, { ca: readFileSync(caB) })).resolves.toBeDefined()
    expect(old.connected).toBe(true)
  })
})

async function freePort (): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise(resolve => server.once('listening', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}

describe('the CLI', () => {
  test('SIGHUP reloads the password file while clients stay connected', async () => {
    const { startCli } = await import('../helpers/cli.js')
    const dir = tempDir()
    const file = await passwordFile(dir)
    const cli = await startCli(dir, { listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' }, auth: { passwordFile: 'passwords' } })
    const url = `mqtt://127.0.0.1:${cli.ports.tcp}`
    const alice = await connect(url, { username: 'alice', password: 'wonderland' })
    await expect(connect(url, { username: 'dora', password: 'explorer' })).rejects.toEqual(refusedWith(5))
    expect((await runCli(['passwd', '-b', file, 'dora', 'explorer'], dir)).code).toBe(0)
    cli.proc.kill('SIGHUP')
    await until(() => cli.logs.some(l => typeof l.msg === 'string' && l.msg.startsWith('reloaded the password file')), 'the reload')
    await expect(connect(url, { username: 'dora', password: 'explorer' })).resolves.toBeDefined()
    expect(alice.connected).toBe(true)
    cli.proc.kill('SIGTERM')
    expect(await cli.exited).toBe(0)
  })

  test('check reports a bad password file with its line', async () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'passwords'), 'ok:$7$101$v7Z63vgr7BJWmSFO$e0CY\nbroken\n')
    writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify({ auth: { passwordFile: 'passwords' } }))
    const result = await runCli(['check'], dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`${path.join(dir, 'passwords')}:2: expected user:hash`)
  })
})
