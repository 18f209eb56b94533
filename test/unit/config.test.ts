import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { ConfigError, loadConfig, parseConfig } from '../../src/index.js'
import { tempDir } from '../helpers/broker.js'

const problemsOf = (input: unknown, baseDir?: string): readonly string[] => {
  try {
    parseConfig(input, { baseDir })
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).code).toBe('ERR_CONFIG_INVALID')
    return (err as ConfigError).problems
  }
  throw new Error('expected the config to be rejected')
}

describe('defaults', () => {
  test('tcp 1883, tls 8883 and wss 8084 on 127.0.0.1, LevelDB in ./data', () => {
    const config = parseConfig({}, { baseDir: '/srv/sy' })
    expect(config.listeners.map(l => [l.type, l.host, l.port])).toEqual([
      ['tcp', '127.0.0.1', 1883], ['tls', '127.0.0.1', 8883], ['wss', '127.0.0.1', 8084]
    ])
    expect(config.persistence).toEqual({ type: 'level', path: '/srv/sy/data' })
    expect(config.limits).toEqual({ maxPacketSize: 1048576, maxConnections: 10000, maxQueuedMessages: 1000, maxClientIdLength: 256 })
    expect(config.log.level).toBe('info')
  })

  test('switchyard.example.json is valid and holds every option at its default', () => {
    const example = JSON.parse(readFileSync(new URL('../../switchyard.example.json', import.meta.url), 'utf8'))
    expect(parseConfig(example, { baseDir: '/x' })).toEqual(parseConfig({}, { baseDir: '/x' }))
  })

  test('the result is frozen all the way down', () => {
    const config = parseConfig({})
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.listeners[0])).toBe(true)
    expect(Object.isFrozen(config.limits)).toBe(true)
  })

  test('TLS listeners without cert and key use generated certificates under certs/', () => {
    const config = parseConfig({ listeners: [{ type: 'tls' }] }, { baseDir: '/srv/sy' })
    expect(config.listeners[0]).toMatchObject({ cert: '/srv/sy/certs/server.crt', key: '/srv/sy/certs/server.key', generated: true })
  })
})

describe('every problem is reported, naming the key and the fix', () => {
  test('unknown keys, wrong types and bad enum values, all at once', () => {
    const problems = problemsOf({
      listeners: [{ type: 'tcp', port: '1883' }, { type: 'udp' }, { type: 'tcp', prot: 1 }],
      limits: { maxPacketSize: -1, maxConnection: 5 },
      log: { level: 'verbose' },
      persistance: {}
    })
    expect(problems).toEqual(expect.arrayContaining([
      'listeners[0].port: expected number, got "1883"',
      'listeners[1].type: must be one of "tcp", "tls", "wss", "ws"',
      'listeners[2].prot: unknown key; remove it or check its spelling in docs/configuration.md',
      'limits.maxConnection: unknown key; remove it or check its spelling in docs/configuration.md',
      'persistance: unknown key; remove it or check its spelling in docs/configuration.md'
    ]))
    expect(problems.find(p => p.startsWith('limits.maxPacketSize:'))).toMatch(/>=\s*64/)
    expect(problems.find(p => p.startsWith('log.level:'))).toMatch(/"info"/)
    expect(problems).toHaveLength(7)
  })

  test('a missing certificate file names the listener, the field and the resolved path', () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'server.key'), 'k')
    const problems = problemsOf({ listeners: [{ type: 'tcp' }, { type: 'tls', cert: 'certs/server.crt', key: 'server.key' }] }, dir)
    expect(problems).toEqual([
      `listeners[1].cert: file not found: certs/server.crt (resolved to ${path.join(dir, 'certs/server.crt')}); fix the path, or remove cert and key to use a generated development certificate`
    ])
  })

  test('cert without key', () => {
    expect(problemsOf({ listeners: [{ type: 'wss', cert: 'a.crt' }] }, tempDir())[0]).toMatch(/^listeners\[0\]: "cert" and "key" go together/)
  })

  test('two listeners on one port', () => {
    expect(problemsOf({ listeners: [{ type: 'tcp', port: 1883 }, { type: 'ws', port: 1883 }] })).toEqual([
      'listeners[1].port: 127.0.0.1:1883 is already used by listeners[0]; give each listener its own port'
    ])
  })

  test('cross-field problems come with the schema problems, not after they are fixed', () => {
    const problems = problemsOf({
      listeners: [{ type: 'tcp', port: 1883 }, { type: 'tcp', prot: 1 }, { type: 'ws', port: 1883 }],
      log: { level: 'verbose' },
      auth: { allowAnonymous: false, aclFile: 'nope.acl' }
    }, '/tmp/none')
    expect(problems).toEqual([
      'listeners[1].prot: unknown key; remove it or check its spelling in docs/configuration.md',
      expect.stringMatching(/^log\.level: must be one of /),
      'auth.aclFile: file not found: nope.acl (resolved to /tmp/none/nope.acl)',
      'listeners[2].port: 127.0.0.1:1883 is already used by listeners[0]; give each listener its own port'
    ])
    // allowAnonymous: false with no way to log in is not reported while a listener is invalid: it may be the one with client-certificate logins.
    expect(problemsOf({ listeners: [{ type: 'tcp' }], log: { level: 'x' }, auth: { allowAnonymous: false } }).at(-1)).toMatch(/^auth\.allowAnonymous: false, but/)
  })
})

describe('local-only by default, as Mosquitto 2', () => {
  test('a non-loopback listener without authentication refuses to start', () => {
    expect(problemsOf({ listeners: [{ type: 'tcp', host: '0.0.0.0' }] })).toEqual([
      'listeners[0].host: "0.0.0.0" is not a loopback address and no authentication is configured; bind to 127.0.0.1, set "auth": { "passwordFile": ... }, or set "auth": { "allowAnonymous": true } to accept anonymous remote clients (see docs/security.md)'
    ])
  })

  test('a password file, or client-certificate identity on that listener, counts as authentication', () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'passwords'), '')
    writeFileSync(path.join(dir, 'ca.crt'), '')
    expect(() => parseConfig({ listeners: [{ type: 'tcp', host: '0.0.0.0' }], auth: { passwordFile: 'passwords' } }, { baseDir: dir })).not.toThrow()
    expect(() => parseConfig({ listeners: [{ type: 'tls', host: '0.0.0.0', ca: 'ca.crt', requestCert: true, useIdentityAsUsername: true }] }, { baseDir: dir })).not.toThrow()
  })

  test.each(['127.0.0.1', '127.1.2.3', 'localhost', '::1'])('%s is loopback', host => {
    expect(() => parseConfig({ listeners: [{ type: 'tcp', host }] })).not.toThrow()
  })

  test('auth.allowAnonymous: true opens it deliberately', () => {
    expect(parseConfig({ listeners: [{ type: 'tcp', host: '0.0.0.0' }], auth: { allowAnonymous: true } }).listeners[0]!.host).toBe('0.0.0.0')
  })
})

describe('auth and client certificates', () => {
  test('cross-field rules, each named', () => {
    const problems = problemsOf({
      listeners: [{ type: 'tls', requestCert: true }, { type: 'wss', useIdentityAsUsername: true }],
      auth: { passwordFile: 'nope', aclFile: 'nope.acl' }
    }, '/tmp/none')
    expect(problems).toEqual([
      'listeners[0].requestCert: needs "ca", the CA that client certificates must be signed by',
      'listeners[1].useIdentityAsUsername: needs "requestCert": true (and "ca"), so that every client presents a certificate',
      'auth.passwordFile: file not found: nope (resolved to /tmp/none/nope); create it with `switchyard passwd -c <file> <user>`',
      'auth.aclFile: file not found: nope.acl (resolved to /tmp/none/nope.acl)'
    ])
  })

  test('allowAnonymous: false with no way to log in is refused', () => {
    expect(problemsOf({ listeners: [{ type: 'tcp' }], auth: { allowAnonymous: false } })).toEqual([
      'auth.allowAnonymous: false, but there is no passwordFile and no listener with useIdentityAsUsername: no client could connect; add "passwordFile"'
    ])
  })

  test('auth file paths resolve against the config directory', () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'passwords'), '')
    expect(parseConfig({ auth: { passwordFile: 'passwords' } }, { baseDir: dir }).auth.passwordFile).toBe(path.join(dir, 'passwords'))
  })
})

describe('loadConfig', () => {
  test('relative paths resolve against the config file directory, not the cwd', () => {
    const dir = tempDir()
    mkdirSync(path.join(dir, 'etc'))
    writeFileSync(path.join(dir, 'etc', 'sy.json'), JSON.stringify({ persistence: { type: 'level', path: 'state' } }))
    expect(loadConfig('etc/sy.json', dir).persistence).toEqual({ type: 'level', path: path.join(dir, 'etc', 'state') })
  })

  test('./switchyard.json is used when no file is named, else the defaults', () => {
    const dir = tempDir()
    expect(loadConfig(undefined, dir).listeners).toHaveLength(3)
    writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify({ listeners: [{ type: 'tcp', port: 0 }] }))
    expect(loadConfig(undefined, dir).listeners).toHaveLength(1)
  })

  test('invalid JSON and a missing file are config errors', () => {
    const dir = tempDir()
    writeFileSync(path.join(dir, 'bad.json'), '{ "log": { "level": "info", } }')
    expect(() => loadConfig('bad.json', dir)).toThrow(/not valid JSON/)
    expect(() => loadConfig('missing.json', dir)).toThrow(/--config: cannot read/)
  })

  test('a JSON syntax error names the file, the line and the column', () => {
    const dir = tempDir()
    const file = path.join(dir, 'bad.json')
    const problemOf = (text: string) => {
      writeFileSync(file, text)
      try {
        loadConfig('bad.json', dir)
      } catch (err) {
        expect(err).toMatchObject({ code: 'ERR_CONFIG_INVALID' })
        return (err as ConfigError).problems[0]
      }
      throw new Error('expected a ConfigError')
    }
    const fix = '; fix the syntax (JSON allows no comments or trailing commas)'
    expect(problemOf('{\n  "log": { "level": "info", }\n}\n')).toBe(`${file}:2:29: not valid JSON: Expected double-quoted property name${fix}`)
    // Node 20 gives no position for this one
    expect(problemOf('{\n  "listeners": [\n    { "type": "tcp" },\n  ]\n}\n')).toBe(`${file}:4:3: not valid JSON: Unexpected token ']'${fix}`)
    expect(problemOf('{\n  // a comment\n}')).toBe(`${file}:2:3: not valid JSON: Expected property name or '}'${fix}`)
    expect(problemOf('{ "log": ')).toBe(`${file}:1:10: not valid JSON: Unexpected end of JSON input${fix}`)
  })
})
