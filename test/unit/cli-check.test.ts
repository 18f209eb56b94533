import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { runCheck } from '../../src/cli/check.js'
import { parseConfig, type ConfigInput } from '../../src/config.js'
import { generateClientCertificate, generateDevCertificates } from '../../src/listeners/certs.js'
import { memoryOutput, scratchDir } from '../helpers/cli-io.js'

/** `switchyard check` over `input`, with relative paths resolved against `dir`. No rule files: no rule host is started. */
async function check (dir: string, input: ConfigInput, file?: string) {
  const io = memoryOutput()
  const code = await runCheck(parseConfig(input, { baseDir: dir }), file, io)
  return { code, stdout: io.stdout, stderr: io.stderr }
}

let shared: string | undefined
afterAll(() => { if (shared !== undefined) rmSync(shared, { recursive: true, force: true }) })

/** A directory whose certs/ holds a development CA, server.crt with its server.key, stranger.key (another certificate's key) and junk.key (not a key); made once per file. */
function certs (): string {
  if (shared === undefined) {
    shared = mkdtempSync(path.join(os.tmpdir(), 'switchyard-cli-certs-'))
    generateDevCertificates(path.join(shared, 'certs'))
    generateClientCertificate(path.join(shared, 'certs'), 'stranger')
    writeFileSync(path.join(shared, 'certs', 'junk.key'), 'not a key')
  }
  return shared
}

const tls = (key: string, type: 'tls' | 'wss' = 'tls') => ({ type, port: 0, cert: 'certs/server.crt', key })

describe('switchyard check, in process', () => {
  test('a valid config passes, naming the --config file and the rules directory', async () => {
    const dir = scratchDir()
    expect(await check(dir, {}, 'switchyard.json')).toEqual({ code: 0, stdout: `configuration OK: switchyard.json; 0 rule files OK in ${path.join(dir, 'rules')}\n`, stderr: '' })
    expect((await check(dir, {})).stdout).toBe(`configuration OK; 0 rule files OK in ${path.join(dir, 'rules')}\n`)
  })

  test('with rules.dir null there are no rule files to check', async () => {
    expect(await check(scratchDir(), { rules: { dir: null } })).toEqual({ code: 0, stdout: 'configuration OK; no rules directory (rules.dir is null)\n', stderr: '' })
  })

  test('ACL lines that are most likely typos are warnings; the check passes', async () => {
    const dir = scratchDir()
    writeFileSync(path.join(dir, 'acl'), 'user carol\npattern write devices/%x/telemetry\n')
    const result = await check(dir, { auth: { aclFile: 'acl' } })
    expect(result.stderr).toMatch(/^switchyard: warning: .*:2: pattern "devices\/%x\/telemetry": unknown substitution "%x"/)
    expect(result.stderr.split('\n')).toHaveLength(2)
    expect(result.stdout).toMatch(/^configuration OK; /)
    expect(result.code).toBe(0)
  })

  test('an auth file that does not parse fails the check', async () => {
    const dir = scratchDir()
    writeFileSync(path.join(dir, 'acl'), 'topic raed a/b\n')
    const result = await check(dir, { auth: { aclFile: 'acl' } })
    expect(result.stderr).toMatch(/^switchyard: invalid auth files:\n {2}/)
    expect(result.stderr).toContain(`${path.join(dir, 'acl')}:1:`)
    expect(result).toMatchObject({ code: 1, stdout: '' })
  })

  test('files the broker would not load are named, with why', async () => {
    const dir = scratchDir()
    mkdirSync(path.join(dir, 'rules'))
    writeFileSync(path.join(dir, 'rules', 'x.mjs'), '')
    const result = await check(dir, {})
    expect(result.stderr).toMatch(/^switchyard: warning: .*x\.mjs: ignored: rule files are named <name>\.js/)
    expect(result.code).toBe(0)
  })

  test('a TLS key that is not its certificate\'s fails the check with ERR_TLS, every listener in one message', async () => {
    const dir = certs()
    const result = await check(dir, { listeners: [{ type: 'tcp', port: 0 }, tls('certs/stranger.key'), tls('certs/junk.key', 'wss')] })
    const lines = result.stderr.split('\n')
    expect(lines.slice(0, 2)).toEqual([
      'switchyard: ERR_TLS: invalid configuration:',
      '  listeners[1].key: certs/stranger.key does not match listeners[1].cert (certs/server.crt); give the private key that certificate was issued for, or the certificate issued for this key'
    ])
    expect(lines[2]).toMatch(/^ {2}listeners\[2\]\.key: certs\/junk\.key is not a usable PEM private key \(/)
    expect(result).toMatchObject({ code: 1, stdout: '' })
  })

  test('a TLS listener whose key matches passes', async () => {
    const dir = certs()
    expect(await check(dir, { listeners: [tls('certs/server.key'), tls('certs/server.key', 'wss')] })).toMatchObject({ code: 0, stderr: '' })
  })

  test('a development certificate that the first start would generate is skipped, and check writes nothing', async () => {
    const dir = scratchDir()
    const result = await check(dir, { listeners: [{ type: 'tls', port: 0 }] })
    expect(result).toMatchObject({ code: 0, stderr: '' })
    expect(existsSync(path.join(dir, 'certs'))).toBe(false)
  })
})
