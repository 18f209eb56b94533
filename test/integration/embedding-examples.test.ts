/*
 * Every example of docs/embedding.md runs as a real process, importing the
 * built package by its name (switchyard-mqtt resolves to this checkout
 * through package.json "exports"), and prints what the doc says. The doc
 * shows each file verbatim, so the two cannot drift.
 */
import { execFile } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const DIR = path.join(ROOT, 'examples/embedding')
const DOC = readFileSync(path.join(ROOT, 'docs/embedding.md'), 'utf8')

/** Each example's whole output. A new example needs its line here. */
const EXPECTED: Record<string, string[]> = {
  'subscribe.mjs': ['sensors/t1 21.5 qos=1 from api null'],
  'events.mjs': [
    'connect thermo-1',
    'subscribe thermo-1 rooms/#',
    'publish rooms/kitchen by client thermo-1',
    'unsubscribe thermo-1 rooms/#',
    'disconnect thermo-1 (DISCONNECT)'
  ],
  'hooks.mjs': [
    'wrong token: refused, CONNACK 5',
    'right token: connected',
    'subscribe admin/#: granted 128',
    'routed devices/device-1/temp',
    'denied publishes: 1'
  ],
  'rules.mjs': [
    'celsius: running, topics sensors/+/fahrenheit',
    'sensors/t1/celsius {"value":100} by rule celsius',
    'broken: failed, export function convert(msg) is missing',
    'removed: true',
    'rules: broken'
  ],
  'no-rules-dir.mjs': ['rules.dir: null', './rules exists: false', 'rules: 0'],
  'mqtt5.mjs': [
    'routed thermostat/get, response topic app/replies',
    'reply on app/replies: {"setpoint":21}, correlation data req-1, application/json',
    'ERR_INVALID_PROPERTIES: cannot publish to thermostat/get: properties.responseTopic: must not contain wildcards (+ or #) [MQTT-3.3.2-2]; got "app/#"'
  ],
  'publish.mjs': [
    'ERR_INVALID_TOPIC: cannot publish to "alerts/#": the topic must not contain wildcards (+ or #) [MQTT-3.3.2-2]',
    'ERR_INVALID_QOS: cannot publish to alerts/a: qos must be 0, 1 or 2; got number 5',
    'ERR_INVALID_PAYLOAD: cannot publish to alerts/a: the payload must be a string, a Buffer, a Uint8Array, a plain object or an array; got number 42',
    'published alerts/a {"level":"high","at":[9,30]}'
  ]
}

const files = readdirSync(DIR).filter(f => f.endsWith('.mjs')).sort()

describe('docs/embedding.md examples', () => {
  test('every example file has its expected output, and the doc shows it verbatim', () => {
    expect(files).toEqual(Object.keys(EXPECTED).sort())
    for (const file of files) {
      const code = readFileSync(path.join(DIR, file), 'utf8').trimEnd()
      expect(DOC.includes('```js\n' + code + '\n```'), `docs/embedding.md shows examples/embedding/${file} verbatim`).toBe(true)
    }
  })

  test.each(files)('%s runs and prints what the doc says', async file => {
    // In an empty directory: the examples must not depend on, or leave, anything in the working directory.
    const cwd = tempDir()
    const { stdout } = await promisify(execFile)(process.execPath, ['--no-node-snapshot', path.join(DIR, file)], { cwd, timeout: 15_000 })
    expect(stdout.trimEnd().split('\n')).toEqual(EXPECTED[file])
    expect(readdirSync(cwd)).toEqual([])
  })
})
