import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Level } from 'level'
import { describe, expect, onTestFinished, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { runCli, startCli } from '../helpers/cli.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Running, and not a zombie waiting for a parent that does not reap. */
function alive (pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z'
  } catch {
    return false
  }
}

async function until (check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

function portIsFree (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const server = net.createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A config with level persistence (its lock must be released too) on a port chosen here. */
async function configIn (dir: string): Promise<{ file: string, port: number, data: string }> {
  const probe = net.createServer().listen(0, '127.0.0.1')
  await new Promise(resolve => probe.once('listening', resolve))
  const port = (probe.address() as net.AddressInfo).port
  await new Promise(resolve => probe.close(resolve))
  const file = path.join(dir, 'switchyard.json')
  const data = path.join(dir, 'data')
  writeFileSync(file, JSON.stringify({ listeners: [{ type: 'tcp', port }], persistence: { type: 'level', path: data } }))
  return { file, port, data }
}

describe('--pid-file', () => {
  test('is written once the listeners are bound, with the broker pid, and removed on exit', async () => {
    const dir = tempDir()
    const pidFile = path.join(dir, 'switchyard.pid')
    const cli = await startCli(dir, { listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' } }, ['--pid-file', pidFile])
    await until(() => existsSync(pidFile), 'the pid file')
    expect(readFileSync(pidFile, 'utf8')).toBe(`${cli.proc.pid}\n`)
    cli.proc.kill('SIGTERM')
    expect(await cli.exited).toBe(0)
    expect(existsSync(pidFile)).toBe(false)
  })

  test('a stale pid file is replaced, as Mosquitto does', async () => {
    const dir = tempDir()
    const pidFile = path.join(dir, 'switchyard.pid')
    writeFileSync(pidFile, `${process.pid}\n`)
    const cli = await startCli(dir, { listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' } }, ['--pid-file', pidFile])
    await until(() => readFileSync(pidFile, 'utf8') === `${cli.proc.pid}\n`, 'the pid file to be rewritten')
    cli.proc.kill('SIGINT')
    expect(await cli.exited).toBe(0)
  })

  test('a pid file that cannot be written stops the start with ERR_PID_FILE and releases the ports', async () => {
    const dir = tempDir()
    const { file, port } = await configIn(dir)
    const result = await runCli(['start', '--config', file, '--pid-file', path.join(dir, 'missing', 'switchyard.pid')], dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('ERR_PID_FILE')
    expect(result.stderr).toContain(path.join(dir, 'missing', 'switchyard.pid'))
    expect(await portIsFree(port)).toBe(true)
  })

  test("only applies to 'start'", async () => {
    const result = await runCli(['check', '--pid-file', 'x.pid'], tempDir())
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("--pid-file only applies to 'start'")
  })
})

test('two signals at once (Ctrl-C under npm start: from the terminal and from npm) still close gracefully', async () => {
  const cli = await startCli(tempDir(), { listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' } })
  cli.proc.kill('SIGINT')
  cli.proc.kill('SIGINT')
  expect(await cli.exited).toBe(0)
  expect(cli.logs.map(l => l.msg)).toContain('broker closed')
})

describe('npm start', () => {
  /** `npm start` in the repository, with a config of our own; resolves once the broker has written its pid file. */
  async function npmStart (): Promise<{ npm: ChildProcess, brokerPid: number, port: number, data: string, exited: Promise<unknown> }> {
    const dir = tempDir()
    const { file, port, data } = await configIn(dir)
    const pidFile = path.join(dir, 'switchyard.pid')
    const npm = spawn('npm', ['start', '--', 'start', '--config', file, '--pid-file', pidFile], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    npm.stderr!.on('data', d => { stderr += d })
    const exited = new Promise(resolve => npm.once('exit', resolve))
    let brokerPid = 0
    onTestFinished(() => {
      if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL')
      if (brokerPid > 0 && alive(brokerPid)) process.kill(brokerPid, 'SIGKILL')
    })
    await until(() => existsSync(pidFile) || npm.exitCode !== null, `the broker's pid file (npm stderr: ${stderr})`, 15_000)
    brokerPid = Number(readFileSync(pidFile, 'utf8'))
    expect(brokerPid).toBeGreaterThan(0)
    expect(brokerPid).not.toBe(npm.pid)
    return { npm, brokerPid, port, data, exited }
  }

  test('SIGTERM to the npm process stops the broker: it exits, and its port and LevelDB lock are free', async () => {
    const { npm, brokerPid, port, data, exited } = await npmStart()
    npm.kill('SIGTERM')
    await exited
    // npm waits for the broker: once npm is gone, so is the broker.
    expect(alive(brokerPid)).toBe(false)
    expect(await portIsFree(port)).toBe(true)
    const db = new Level(data)
    await db.open()
    await db.close()
  })

  test('a killed npm process (SIGKILL, nothing forwarded) still stops the broker', async () => {
    const { npm, brokerPid, port } = await npmStart()
    npm.kill('SIGKILL')
    await until(() => !alive(brokerPid), 'the broker to exit after its npm parent died')
    expect(await portIsFree(port)).toBe(true)
  })
})
