/*
 * A rule host that cannot start (issue 10): createBroker fails with
 * ERR_RULES_HOST by its deadline instead of restarting the host forever,
 * closes what it opened, and the CLI exits 1 naming the code.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { createBroker, type ConfigInput } from '../../src/index.js'
import { startBroker, tempDir } from '../helpers/broker.js'
import { BIN } from '../helpers/cli.js'

const RULE = `export const topics = ['a/#']; export function convert (m) { return null }`

function rulesDir (): string {
  const dir = tempDir('switchyard-rules-')
  writeFileSync(path.join(dir, 'r.js'), RULE)
  return dir
}

function brokerConfig (dir: string, persistencePath: string): ConfigInput {
  return { listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'level', path: persistencePath }, log: { level: 'silent' }, rules: { dir } }
}

describe('a rule host that cannot start', () => {
  test.each([
    ['a missing entry point', (dir: string) => path.join(dir, 'missing-host.js'), /Cannot find module/],
    ['an entry point that dies at boot', (dir: string) => {
      const file = path.join(dir, 'dying-host.cjs')
      writeFileSync(file, `process.stderr.write('Error: cannot boot\\n'); process.exit(3)`)
      return file
    }, /exit code 3: Error: cannot boot/]
  ])('%s: createBroker fails with ERR_RULES_HOST by the deadline, and closes what it opened', async (_, entryIn, why) => {
    const work = tempDir()
    const entry = entryIn(work)
    const store = path.join(work, 'store')
    const started = Date.now()
    const failure = createBroker(brokerConfig(rulesDir(), store), { rulesHost: { entry, startTimeoutMs: 1500 } })
    await expect(failure).rejects.toMatchObject({ name: 'SwitchyardError', code: 'ERR_RULES_HOST', message: expect.stringMatching(why) })
    const took = Date.now() - started
    expect(took).toBeGreaterThanOrEqual(1400)
    expect(took).toBeLessThan(5000)
    // The LevelDB store was closed: another broker opens it.
    await startBroker(brokerConfig(tempDir(), store))
  })

  test('without rule files the host is not needed, and the broker starts', async () => {
    const broker = await startBroker({ rules: { dir: tempDir() } }, {})
    expect(broker.stats().rulesHostPid).toBeUndefined()
  })

  test('the CLI exits 1 with ERR_RULES_HOST when the host dies at boot', async () => {
    const dir = tempDir()
    mkdirSync(path.join(dir, 'rules'))
    writeFileSync(path.join(dir, 'rules', 'r.js'), RULE)
    writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify({ listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' }, rules: { dir: 'rules' } }))
    // Preloaded into every Node process started with this environment; only
    // a forked child (the rule host, which has an IPC channel) dies of it.
    const preload = path.join(dir, 'kill-forked-children.mjs')
    writeFileSync(preload, `if (typeof process.send === 'function') { process.stderr.write('Error: no rule host here\\n'); process.exit(3) }`)
    const started = Date.now()
    const proc = spawn(BIN, ['start', '--config', 'switchyard.json'], {
      cwd: dir,
      env: { ...process.env, NODE_OPTIONS: `--import=${preload}` },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stderr = ''
    let stdout = ''
    proc.stderr.on('data', d => { stderr += d })
    proc.stdout.on('data', d => { stdout += d })
    const code = await new Promise(resolve => proc.on('exit', c => resolve(c)))
    expect(stderr).toMatch(/^switchyard: ERR_RULES_HOST: the rule host process did not start within 10000 ms \(it died \d+ time\(s\), last: exit code 3: Error: no rule host here\)/m)
    expect(code).toBe(1)
    expect(Date.now() - started).toBeLessThan(18_000)
    expect(stdout).not.toMatch(/listening on/)
  }, 25_000)
})
