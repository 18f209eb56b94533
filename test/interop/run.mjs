// npm run interop: the Eclipse Paho interoperability client tests against
// the built broker (dist/), as a yardstick. They are third-party code and
// stay outside the repository: they are run from ../shared/peers/paho-interop
// (or $PAHO_INTEROP), and skipped, saying so, when that folder is absent.
//
// One broker serves each run, with an ACL that refuses test/nosubscribe
// (test_subscribe_failure needs a refused subscription) and grants the rest.
// The MQTT 3.1.1 suite runs twice: each test in its own process (run.py's
// default), then the whole suite in one process, as users run it: a test
// that passes alone must not fail there. MQTT 5 joins with the MQTT 5 issue.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
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

const { createBroker } = await import(path.join(root, 'dist/index.js'))
const work = mkdtempSync(path.join(os.tmpdir(), 'switchyard-interop-'))
writeFileSync(path.join(work, 'acl'), 'topic readwrite #\ntopic deny test/nosubscribe\n')

let failed = 0
for (const mode of [[], ['--single-process']]) {
  // A fresh broker per run: the second run must not inherit the first's sessions.
  const broker = await createBroker({
    listeners: [{ type: 'tcp', port: 0 }],
    persistence: { type: 'memory' },
    auth: { aclFile: path.join(work, 'acl'), allowAnonymous: true },
    rules: { dir: null },
    log: { level: 'warn' }
  })
  try {
    const port = String(broker.listeners[0].port)
    // Async: the broker runs in this process and must keep serving meanwhile.
    const code = await new Promise(resolve => {
      const child = spawn('python3', [runner, '--host', '127.0.0.1', '--port', port, '--mqtt', '4', '--nosubscribe-topic', 'test/nosubscribe', ...mode], { stdio: 'inherit' })
      child.on('exit', c => resolve(c ?? 1))
    })
    if (code !== 0) failed++
  } finally {
    await broker.close()
  }
}
rmSync(work, { recursive: true, force: true })
console.log(failed === 0 ? 'interop: MQTT 3.1.1 suite passed in both modes' : `interop: ${failed} run(s) had failures`)
process.exit(failed === 0 ? 0 : 1)
