// npm run interop [-- --suites=4,5] [--modes=isolate,single] [--test-timeout=45] [--only=test_basic,...]
//
// The Eclipse Paho interoperability client tests against the built broker
// (dist/), as a yardstick. They are third-party code and stay outside the
// repository: they are run from ../shared/peers/paho-interop (or
// $PAHO_INTEROP), and skipped, saying so, when that folder is absent.
//
// Both suites, MQTT 3.1.1 (client_test.py, 10 tests) and MQTT 5
// (client_test5.py, 27 tests), each in two modes, with a fresh broker per
// suite and mode:
// - isolate: each test in its own Python process (run.py's default), with a
//   per-test timeout, so that a hang costs one test;
// - single: the whole suite in one process against one broker, as users run
//   it. A test that passes alone must not fail here.
// The broker has an ACL that refuses test/nosubscribe (test_subscribe_failure
// needs a refused subscription) and grants the rest, and the `mqtt` settings
// the v5 tests read from CONNACK (MQTT5_SETTINGS below).
//
// Targets (issue 12): 3.1.1 10/10; v5 at least 26/27, and no failure but the
// excused ones below (each with its reason, checked in the run); in single
// mode, every test that passed alone passes. Exit 1 when one is not met.
// --only runs the named tests (substrings, as run.py -k) without the count
// targets: for working on one test. A whole run takes about 10 minutes here
// (MQTT 5 alone: ~5.5 min isolated, ~3 min in one process).
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const suiteDir = process.env.PAHO_INTEROP ?? path.resolve(root, '../shared/peers/paho-interop')
const runner = path.join(suiteDir, 'run.py')
if (!existsSync(runner)) {
  console.log(`interop: skipped: the Paho interoperability tests are not at ${suiteDir} (set PAHO_INTEROP to their folder)`)
  process.exit(0)
}
if (spawnSync('python3', ['--version']).status !== 0) {
  console.log('interop: python3 is needed to run the Paho tests (apt-get install python3)')
  process.exit(1)
}

const args = process.argv.slice(2)
const arg = (name, fallback) => args.find(a => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback
const SUITE_IDS = arg('suites', '4,5').split(',').map(Number)
const MODES = arg('modes', 'isolate,single').split(',')
// The slowest v5 test takes ~28 s here with its clean-up (test_subscribe_options),
// so 45 s bounds a hang without cutting a slow pass.
const TEST_TIMEOUT = Number(arg('test-timeout', '45'))
const ONLY = arg('only', '').split(',').filter(Boolean)

/**
 * Tests allowed to fail, by name, with why, each with a check run in the same
 * run: an excuse that no longer holds is a failure. They do not lower a
 * suite's `minPassed` (issue 12's numbers).
 * - test_flow_control2: only a hang (TIMEOUT alone), and only while it hangs
 *   on Mosquitto too (checked when Mosquitto is installed).
 * - test_subscribe_failure (v5): only while the broker refuses test/nosubscribe
 *   with SUBACK 0x87 and Paho's client library still rejects that code.
 */
const EXCUSED = {
  5: {
    'Test.test_flow_control2': {
      hang: true,
      reason: 'hangs on every broker tried (Mosquitto 2.0.11, bare Aedes 2.0.0-beta.1: the Paho README): it publishes Receive Maximum + 1 QoS 2 messages without reading, and waits for a DISCONNECT 0x93 that those brokers never send',
      holds: async (record, suite) => {
        if (record.status !== 'TIMEOUT') return { holds: false, why: `it did not hang here (${record.status})` }
        const check = await onMosquitto(suite, record.test)
        if (!check.checked) return { holds: true, why: 'not checked against Mosquitto here (not installed)' }
        return check.status === 'TIMEOUT'
          ? { holds: true, why: `hangs on Mosquitto ${check.version} too, checked in this run` }
          : { holds: false, why: `Mosquitto ${check.version} gives ${check.status} now` }
      }
    },
    'Test.test_subscribe_failure': {
      reason: 'the broker refuses the subscription with SUBACK 0x87 (Not authorized), as MQTT 5 (3.9.3) allows and issue 12 asks; the suite\'s own client library (mqtt/formats/MQTTV5/MQTTV5.py) asserts that a SUBACK code is 0, 1, 2 or 0x80 and drops the SUBACK',
      holds: async (record) => {
        if (record.status !== 'FAIL') return { holds: false, why: `it gave ${record.status}, not a failed assertion` }
        const paho = readFileSync(path.join(suiteDir, 'mqtt/formats/MQTTV5/MQTTV5.py'), 'utf8')
        if (!paho.includes('return code in QoS must be 0, 1, 2 or 0x80')) return { holds: false, why: 'Paho\'s client no longer rejects other SUBACK codes' }
        const broker = await startBroker()
        try {
          const code = await subackCode(broker.listeners[0].port, 'test/nosubscribe')
          return code === 0x87
            ? { holds: true, why: 'SUBACK 0x87 and Paho\'s assertion both checked in this run' }
            : { holds: false, why: `the broker answers SUBACK ${code}, not 0x87` }
        } finally {
          await broker.close()
        }
      }
    }
  }
}

const SUITES = [
  { mqtt: 4, name: 'MQTT 3.1.1', file: 'client_test.py', minPassed: 10 },
  { mqtt: 5, name: 'MQTT 5', file: 'client_test5.py', minPassed: 26 }
].filter(s => SUITE_IDS.includes(s.mqtt))

/**
 * What the v5 tests need from the config, and why. The `mqtt` section is
 * new with MQTT 5: the settings the build does not know are left out, and
 * said so, rather than failing the run.
 */
const MQTT5_SETTINGS = {
  // test_server_keep_alive connects with keepalive 120 and expects Server Keep Alive 60 in CONNACK
  maxKeepalive: 60,
  // test_shared_subscriptions
  sharedSubscriptions: true
}

const { createBroker } = await import(path.join(root, 'dist/index.js'))
const { parseConfig } = await import(path.join(root, 'dist/config.js'))
const work = mkdtempSync(path.join(os.tmpdir(), 'switchyard-interop-'))
writeFileSync(path.join(work, 'acl'), 'topic readwrite #\ntopic deny test/nosubscribe\n')

/** The settings this build's config accepts, one key at a time; prints what it leaves out. */
function mqttSettings () {
  const base = { listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' }, rules: { dir: null } }
  const accepts = mqtt => { try { parseConfig({ ...base, mqtt }); return true } catch { return false } }
  if (!accepts({})) {
    console.log('interop: this build has no `mqtt` config section: the broker runs with its defaults (test_server_keep_alive needs maxKeepalive 60)')
    return undefined
  }
  const kept = Object.fromEntries(Object.entries(MQTT5_SETTINGS).filter(([k, v]) => accepts({ [k]: v })))
  const dropped = Object.keys(MQTT5_SETTINGS).filter(k => !(k in kept))
  if (dropped.length > 0) console.log(`interop: this build's \`mqtt\` config does not take ${dropped.join(', ')}: left out`)
  return kept
}
const mqtt = mqttSettings()
if (mqtt) console.log(`interop: broker config mqtt: ${JSON.stringify(mqtt)}`)

async function startBroker () {
  return createBroker({
    listeners: [{ type: 'tcp', port: 0 }],
    persistence: { type: 'memory' },
    auth: { aclFile: path.join(work, 'acl'), allowAnonymous: true },
    rules: { dir: null },
    log: { level: 'warn' },
    ...(mqtt ? { mqtt } : {})
  })
}

// run.py and its children, killed with us (they are in their own process group)
const children = new Set()
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of children) { try { process.kill(-child.pid, 'SIGKILL') } catch {} }
    process.exit(130)
  })
}

/**
 * Runs run.py and resolves with its records ({ test, status, seconds }).
 * In single mode run.py has no per-test timeout: a watchdog kills it when one
 * test runs longer than TEST_TIMEOUT, and that test is recorded as TIMEOUT,
 * those after it as NOT RUN.
 */
function paho (suite, port, { single = false, only = [], skip = [], quiet = false } = {}) {
  const json = path.join(work, `result-${suite.mqtt}-${single ? 'single' : 'isolate'}-${Date.now()}.json`)
  const argv = [runner, '--host', '127.0.0.1', '--port', String(port), '--mqtt', String(suite.mqtt),
    '--nosubscribe-topic', 'test/nosubscribe', '--test-timeout', String(TEST_TIMEOUT), '--json', json,
    ...only.flatMap(t => ['-k', t]), ...skip.flatMap(t => ['--skip', t]),
    ...(single ? ['--single-process', '-v'] : [])]
  const names = spawnSync('python3', [...argv, '--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
  return new Promise(resolve => {
    // Async: the broker may run in this process and must keep serving meanwhile.
    // its own process group, so that a hang can be killed with run.py's children
    const child = spawn('python3', argv, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    children.add(child)
    let current = null
    let hung = null
    const started = new Set()
    const outcome = new Map() // test -> ok | FAIL | ERROR, from the verbose log, for a run killed before its JSON
    const watchdog = single && setInterval(() => {
      if (current && Date.now() - current.at > TEST_TIMEOUT * 1000) {
        hung = current.test
        try { process.kill(-child.pid, 'SIGKILL') } catch {}
      }
    }, 500)
    const forward = (stream, out) => {
      let partial = ''
      stream.on('data', d => {
        if (!quiet) out.write(d)
        // unittest, verbosity 2, at each test's start, at a line's start:
        // "test_basic (client_test5.Test.test_basic) ... " (its docstring's first line may come between)
        const lines = (partial + d.toString()).split('\n')
        partial = lines.pop()
        for (const line of [...lines, partial]) {
          const m = /^(test_\w+) \([\w.]+\)/.exec(line)
          if (m && !started.has(`Test.${m[1]}`)) {
            current = { test: `Test.${m[1]}`, at: Date.now() }
            started.add(current.test)
          }
          // the outcome, at the end of the same line or alone on a later one
          const done = /(?:^|\.\.\. )(ok|FAIL|ERROR)$/.exec(line)
          if (done && current && line !== partial) outcome.set(current.test, done[1])
        }
      })
    }
    forward(child.stdout, process.stdout)
    forward(child.stderr, process.stderr)
    child.on('exit', () => {
      children.delete(child)
      if (watchdog) clearInterval(watchdog)
      if (existsSync(json)) {
        resolve(JSON.parse(readFileSync(json, 'utf8')).results)
        return
      }
      // killed (or crashed) before writing its results: what the log showed
      const statusOf = { ok: 'PASS', FAIL: 'FAIL', ERROR: 'ERROR' }
      const records = names.map(test => ({
        test,
        status: test === hung ? 'TIMEOUT' : outcome.has(test) ? statusOf[outcome.get(test)] : started.has(test) ? 'UNKNOWN' : 'NOT RUN',
        seconds: 0
      }))
      resolve(records)
    })
  })
}

/** The SUBACK code a v5 client gets for `filter`. */
async function subackCode (port, filter) {
  const { default: mqttPacket } = await import('mqtt-packet')
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    parser.on('packet', p => {
      if (p.cmd === 'connack') socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 2 }] }, { protocolVersion: 5 }))
      if (p.cmd === 'suback') { socket.destroy(); resolve(p.granted[0]) }
    })
    socket.on('data', d => parser.parse(d))
    socket.on('error', reject)
    socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'interop-suback-check', keepalive: 0 }))
  })
}

/** How `test` does on Mosquitto, when it is installed. */
async function onMosquitto (suite, test) {
  if (spawnSync('sh', ['-c', 'command -v mosquitto']).status !== 0) return { checked: false }
  const port = await new Promise(resolve => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
  const conf = path.join(work, 'mosquitto.conf')
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n`)
  const mosquitto = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' })
  try {
    for (let i = 0; i < 100; i++) {
      if (await new Promise(resolve => { const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) }); s.on('error', () => resolve(false)) })) break
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    const version = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' }).stdout.match(/version ([\d.]+)/)?.[1] ?? '?'
    const [record] = await paho(suite, port, { only: [test.replace(/^Test\./, '')], quiet: true })
    return { checked: true, version, status: record?.status ?? 'UNKNOWN' }
  } finally {
    mosquitto.kill('SIGTERM')
  }
}

const started = Date.now()
const summary = []
let unmet = 0
for (const suite of SUITES) {
  let alone
  for (const mode of MODES) {
    const single = mode === 'single'
    // A test that hangs alone would hang the single process: skipped there, and
    // said so (without an isolate run first: the excused ones).
    const hangs = alone ? alone.filter(r => r.status === 'TIMEOUT').map(r => r.test) : Object.entries(EXCUSED[suite.mqtt] ?? {}).filter(([, e]) => e.hang).map(([t]) => t)
    const skip = single ? hangs.map(t => t.replace(/^Test\./, '')).filter(t => ONLY.length === 0 || ONLY.some(o => t.includes(o))) : []
    // A fresh broker per run: the second run must not inherit the first's sessions.
    const broker = await startBroker()
    const t0 = Date.now()
    let records
    try {
      records = await paho(suite, broker.listeners[0].port, { single, skip, only: ONLY })
    } finally {
      await broker.close()
    }
    const seconds = (Date.now() - t0) / 1000
    const passed = records.filter(r => r.status === 'PASS')
    const failing = records.filter(r => r.status !== 'PASS')
    const lines = []
    let met = true
    for (const r of failing) {
      const regression = single && alone?.some(a => a.test === r.test && a.status === 'PASS')
      const excuse = EXCUSED[suite.mqtt]?.[r.test]
      if (excuse && !regression) {
        const { holds, why } = await excuse.holds(r, suite)
        if (holds) lines.push(`  ${r.status} ${r.test}: excused: ${excuse.reason} (${why})`)
        else lines.push(`  ${r.status} ${r.test}: listed as excused, but not now: ${why}`)
        if (!holds) met = false
        continue
      }
      lines.push(`  ${r.status} ${r.test}${regression ? ': passes alone, fails with one broker serving the suite' : ''}`)
      met = false
    }
    for (const t of skip) lines.push(`  skipped Test.${t}: it ${alone ? 'hung alone' : 'is excused as a hang'}, and would hang this process`)
    const total = single ? records.length + skip.length : records.length
    // the count is the suite's (isolate mode); in one process, what matters is what passed alone
    const counted = !single && ONLY.length === 0
    if (counted && passed.length < suite.minPassed) met = false
    const target = counted ? `at least ${suite.minPassed}/${records.length}, no failure but the excused` : single ? 'no failure but the excused, and every test that passes alone passes' : 'no failure but the excused (--only: no count)'
    summary.push(`interop: ${suite.name}, ${single ? 'one process (--single-process)' : 'each test alone'}: ${passed.length}/${total} passed in ${seconds.toFixed(0)} s; target (${target}): ${met ? 'met' : 'NOT MET'}`, ...lines)
    if (!met) unmet++
    if (!single) alone = records
  }
}
rmSync(work, { recursive: true, force: true })
console.log(`\n${summary.join('\n')}`)
console.log(`interop: ${((Date.now() - started) / 60000).toFixed(1)} min; ${unmet === 0 ? 'every target met' : `${unmet} run(s) missed their target`}`)
process.exit(unmet === 0 ? 0 : 1)
