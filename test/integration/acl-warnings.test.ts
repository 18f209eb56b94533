import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { startBroker, tempDir } from '../helpers/broker.js'
import { runCli } from '../helpers/cli.js'
import { captureLog } from '../helpers/log.js'

// Lines Mosquitto accepts with a meaning the author rarely wants: kept, and warned about with file:line.
const TYPOS = 'user carol\ntopic read plant/line 1\npattern write devices/%x/telemetry\n'

async function check (acl: string) {
  const dir = tempDir()
  writeFileSync(path.join(dir, 'acl'), acl)
  writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify({ auth: { aclFile: 'acl' }, rules: { dir: 'rules' } }))
  return { ...await runCli(['check'], dir), acl: path.join(dir, 'acl') }
}

describe('ACL lines that are most likely typos', () => {
  test('switchyard check prints each warning with file:line and still passes', async () => {
    const result = await check(TYPOS)
    expect(result.stderr).toContain(`switchyard: warning: ${result.acl}:2: topic "plant/line 1" contains a space; as in Mosquitto, the rest of the line after the access is the topic`)
    expect(result.stderr).toContain(`switchyard: warning: ${result.acl}:3: pattern "devices/%x/telemetry": unknown substitution "%x"`)
    expect(result.code).toBe(0)
  })

  test('switchyard check fails on a misspelt access (as Mosquitto does) and on "topic read" with no topic, naming file:line', async () => {
    const result = await check('user carol\ntopic raed devices/carol/#\ntopic read\n')
    expect(result.stderr).toContain(`${result.acl}:2: topic "raed devices/carol/#" contains a space, did you mean \`read\`?`)
    expect(result.stderr).toContain(`${result.acl}:3: "topic read" needs a topic filter after the access`)
    expect(result.code).toBe(1)
  })

  test('the broker logs the warnings at start and on reload', async () => {
    const dir = tempDir()
    const acl = path.join(dir, 'acl')
    writeFileSync(acl, TYPOS)
    const log = captureLog()
    const broker = await startBroker({ auth: { aclFile: acl } }, { logger: log.logger })
    const warned = () => log.lines.filter(l => l.level === 40 && String(l.msg).startsWith(`${acl}:3: pattern "devices/%x/telemetry": unknown substitution`))
    expect(warned()).toHaveLength(1)
    await broker.reload()
    expect(warned()).toHaveLength(2)
  })
})
