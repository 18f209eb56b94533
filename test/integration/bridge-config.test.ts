/*
 * The "bridges" section (issue 14): validated once, every problem named with
 * its key and fix; `switchyard check` also loads what a start would (the
 * password variable, the CA, certificate and key).
 */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { runCheck } from '../../src/cli/check.js'
import { parseConfig, type ConfigInput } from '../../src/config.js'
import { ConfigError } from '../../src/errors.js'
import { createBroker } from '../../src/index.js'
import { tempDir, testCerts } from '../helpers/broker.js'
import { memoryOutput } from '../helpers/cli-io.js'

type BridgeInput = NonNullable<ConfigInput['bridges']>[number]
const TOPICS: BridgeInput['topics'] = [{ pattern: 'a/#', direction: 'both', qos: 1 }]

function problemsOf (input: ConfigInput, baseDir = '/x'): readonly string[] {
  try {
    parseConfig(input, { baseDir })
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

describe('bridges config', () => {
  test('defaults: the contract\'s example, with clientId switchyard-<name>', () => {
    const config = parseConfig({ bridges: [{ name: 'plant', address: 'mqtt://plant-broker.local:1883', topics: [{ pattern: 'sensors/#', direction: 'in' }] }] })
    expect(config.bridges).toEqual([{
      name: 'plant',
      address: 'mqtt://plant-broker.local:1883',
      clientId: 'switchyard-plant',
      ca: null,
      cert: null,
      key: null,
      cleanSession: false,
      keepalive: 60,
      protocolVersion: 5,
      topics: [{ pattern: 'sensors/#', direction: 'in', qos: 0, localPrefix: '', remotePrefix: '' }],
      reconnect: { minMs: 1000, maxMs: 60000 },
      queue: { maxMessages: 100000 }
    }])
    expect(parseConfig({}).bridges).toEqual([])
  })

  test('every problem at once, each naming its key and the fix', () => {
    const problems = problemsOf({
      bridges: [
        { name: 'a/b', address: 'http://x', topics: TOPICS },
        { name: 'plant', address: 'mqtt://u:p@host', password: 'p', passwordEnv: 'P', topics: TOPICS },
        { name: 'plant', address: 'mqtt://host', passwordEnv: 'not a name', username: 'u', ca: 'ca.crt', topics: TOPICS },
        { name: 'tls', address: 'mqtts://host', cert: 'missing.crt', topics: TOPICS, reconnect: { minMs: 5000, maxMs: 1000 } },
        { name: 'topics', address: 'ws://host/mqtt', topics: [{ pattern: '#', localPrefix: 'a/+/' }, { pattern: 'a/#/b' }] }
      ]
    })
    expect(problems).toEqual([
      'bridges[0].name: "a/b" must be 1 to 64 letters, digits, \'.\', \'_\' or \'-\', starting with a letter or digit (it is a topic level in $SYS/broker/connection/<name>/state)',
      'bridges[0].address: "http" is not a bridge scheme; use mqtt://, mqtts:// (TLS), ws:// or wss://',
      'bridges[1].address: give the credentials in "username" and "password" (or "passwordEnv"), not in the URL',
      'bridges[1].passwordEnv: the password is also in bridges[1].password; give it in one place (passwordEnv keeps it out of the config file)',
      'bridges[1].username: a password needs a username (MQTT 3.1.1 [MQTT-3.1.2-22]); add "username"',
      'bridges[2].name: "plant" is already the name of bridges[1]; give each bridge its own name',
      'bridges[2].passwordEnv: "not a name" is not an environment variable name; give the variable\'s name (e.g. "PLANT_PASSWORD"), not the password',
      'bridges[2].ca: only used with TLS; write the address as mqtts:// or wss://, or remove "ca"',
      'bridges[3]: "cert" and "key" go together (the client certificate and its key); set both, or neither',
      'bridges[3].cert: file not found: missing.crt (resolved to /x/missing.crt)',
      'bridges[3].reconnect.minMs: 5000 is more than reconnect.maxMs 1000; the backoff doubles from minMs up to maxMs',
      'bridges[4].topics[0].localPrefix: "a/+/" must not contain wildcards (+ or #): it is prepended to the pattern',
      'bridges[4].topics[1].pattern: the local filter "a/#/b" "#" must be a whole level and the last one; with an empty pattern, the prefix must be the whole topic',
      'bridges[4].topics[1].pattern: the remote filter "a/#/b" "#" must be a whole level and the last one; with an empty pattern, the prefix must be the whole topic'
    ])
  })

  test('schema problems name the key: a misspelt option, a missing topic list, a bad direction', () => {
    const problems = problemsOf({ bridges: [{ name: 'p', address: 'mqtt://h', topic: [], topics: [{ pattern: 'x', direction: 'sideways' }] }] } as unknown as ConfigInput)
    expect(problems).toEqual(expect.arrayContaining([
      'bridges[0].topic: unknown key; remove it or check its spelling in docs/configuration.md',
      'bridges[0].topics[0].direction: must be one of "in", "out", "both"; got "sideways"'
    ]))
  })

  test('with "cluster": accepted (each bridge runs on the node holding its lease: bridge-cluster.test.ts)', () => {
    expect(problemsOf({ cluster: {}, bridges: [{ name: 'p', address: 'mqtt://h', topics: TOPICS }] })).toEqual([])
  })

  test('switchyard check: the password variable must be set; the CA must be a usable PEM file', async () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'junk.crt'), 'not a certificate')
    const config = parseConfig({
      rules: { dir: null },
      bridges: [
        { name: 'a', address: 'mqtts://h', username: 'u', passwordEnv: 'PLANT_PASSWORD', ca: testCerts().ca, topics: TOPICS },
        { name: 'b', address: 'mqtts://h', ca: 'junk.crt', topics: TOPICS }
      ]
    }, { baseDir: dir })
    const io = memoryOutput()
    expect(await runCheck(config, undefined, io, {})).toBe(1)
    expect(io.stderr).toContain('bridges[0].passwordEnv: the environment variable PLANT_PASSWORD is not set')
    expect(io.stderr).toMatch(/bridges\[1\]: cannot use .*junk\.crt: .*; give PEM files/)

    const fixed = parseConfig({ rules: { dir: null }, bridges: [{ name: 'a', address: 'mqtts://h', username: 'u', passwordEnv: 'PLANT_PASSWORD', ca: testCerts().ca, topics: TOPICS }] }, { baseDir: dir })
    const ok = memoryOutput()
    expect(await runCheck(fixed, undefined, ok, { PLANT_PASSWORD: 's3cret' })).toBe(0)
    expect(ok.stdout).toContain('configuration OK')
  })

  test('a start that cannot read a bridge\'s password variable fails before binding anything', async () => {
    await expect(createBroker({
      listeners: [{ type: 'tcp', port: 0 }],
      persistence: { type: 'memory' },
      rules: { dir: null },
      log: { level: 'silent' },
      bridges: [{ name: 'a', address: 'mqtt://127.0.0.1:1', username: 'u', passwordEnv: 'PLANT_PASSWORD', topics: TOPICS }]
    }, { env: {} })).rejects.toMatchObject({ code: 'ERR_CONFIG_INVALID', problems: ['bridges[0].passwordEnv: the environment variable PLANT_PASSWORD is not set; set it to the bridge\'s password before starting'] })
  })
})
