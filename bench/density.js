// node --no-node-snapshot bench/density.js [--rules=1,100,1000] [--config='{"isolateIdleMs":null}']
//
// Rule density (issue 16): the RSS of the broker process and of its rule
// host with N rules loaded, none matching; then after messages to one rule
// (the bench's "1,000 rules, one matching" case); then after one message to
// every rule (the worst case: every rule's isolate live at once). One line
// per step. `--config` is merged into the `rules` section (e.g. isolateIdleMs).
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { freePort, peakRss, removeDir, rss, tempDir } from './lib/brokers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const args = process.argv.slice(2)
const counts = (args.find(a => a.startsWith('--rules='))?.slice(8) ?? '1,100,1000').split(',').map(Number)
const extra = JSON.parse(args.find(a => a.startsWith('--config='))?.slice(9) ?? '{}')
const SETTLE_MS = 5000

const siteRule = i => `export const topics = ['site/${i}/+/temperature']
export function convert (msg) {
  const r = JSON.parse(msg.payload)
  return { topic: 'out/${i}', payload: { temperature: r.value, seq: r.seq, p: r.p, ts: r.ts } }
}`

const mib = b => (b / 1048576).toFixed(1)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function measure (n) {
  const dir = tempDir()
  const rulesDir = path.join(dir, 'rules')
  mkdirSync(rulesDir)
  for (let i = 0; i < n; i++) writeFileSync(path.join(rulesDir, `site${i}.js`), siteRule(i))
  const port = await freePort()
  writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify({
    listeners: [{ type: 'tcp', port }], persistence: { type: 'memory' }, log: { level: 'info' }, rules: { dir: rulesDir, ...extra }
  }))
  const started = performance.now()
  const child = spawn(process.execPath, ['--no-node-snapshot', path.join(ROOT, 'bin/switchyard.js'), 'start', '--config', path.join(dir, 'switchyard.json')], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] })
  let loaded = 0
  let buffered = ''
  child.stdout.on('data', d => {
    buffered += d
    const lines = buffered.split('\n')
    buffered = lines.pop()
    for (const l of lines) if (l.includes('"rule loaded"')) loaded++
  })
  try {
    while (loaded < n) {
      if (child.exitCode !== null) throw new Error('the broker exited')
      await sleep(20)
    }
    const loadMs = performance.now() - started
    await sleep(SETTLE_MS)
    const line = (step) => {
      const total = rss(child.pid) // the broker and its children: the rule host
      const broker = ownRss(child.pid)
      console.log(`${String(n).padStart(5)} rules  ${step.padEnd(26)} broker ${mib(broker).padStart(7)} MiB  rule host ${mib(total - broker).padStart(7)} MiB  total ${mib(total).padStart(7)} MiB  peak ${mib(peakRss(child.pid)).padStart(7)} MiB` + (step === 'loaded, none matching' ? `  (loaded in ${(loadMs / 1000).toFixed(1)} s)` : ''))
    }
    line('loaded, none matching')
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'density' })
    await client.subscribeAsync('out/#')
    const outputs = expectOutputs(client)
    const payload = JSON.stringify({ value: 21.5, seq: 1, p: 'x', ts: 0 })
    for (let k = 0; k < 100; k++) client.publish(`site/${n - 1}/SN-1/temperature`, payload)
    await outputs(100)
    await sleep(SETTLE_MS)
    line('100 messages to one rule')
    for (let i = 0; i < n; i++) client.publish(`site/${i}/SN-1/temperature`, payload)
    await outputs(100 + n)
    await sleep(SETTLE_MS)
    line('one message to every rule')
    await client.endAsync()
  } finally {
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await new Promise(resolve => child.once('exit', resolve))
    }
    removeDir(dir)
  }
}

function ownRss (pid) {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024
  } catch { return 0 }
}

function expectOutputs (client) {
  let received = 0
  let waiter
  client.on('message', () => {
    received++
    if (waiter && received >= waiter.n) waiter.resolve()
  })
  return n => received >= n ? Promise.resolve() : new Promise(resolve => { waiter = { n, resolve } })
}

for (const n of counts) await measure(n)
