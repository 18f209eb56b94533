import { describe, expect, test } from 'vitest'
import { parseCommand } from '../../src/cli/args.js'
import { HELP, PASSWD_HELP } from '../../src/cli/help.js'
import { VERSION } from '../../src/version.js'

describe('parseCommand', () => {
  test('start is the default command; -c is --config', () => {
    expect(parseCommand([])).toEqual({ name: 'start', pretty: false })
    expect(parseCommand(['start', '-c', 'a.json', '--pretty', '--pid-file', 'x.pid'])).toEqual({ name: 'start', config: 'a.json', pretty: true, pidFile: 'x.pid' })
    expect(parseCommand(['check', '--config', 'a.json'])).toEqual({ name: 'check', config: 'a.json' })
  })

  test('passwd gets its arguments untouched: -c is mosquitto_passwd\'s "create" there', () => {
    expect(parseCommand(['passwd', '-c', 'file', 'alice'])).toEqual({ name: 'passwd', argv: ['-c', 'file', 'alice'] })
  })

  test('help, --help, help passwd and --version print', () => {
    expect(parseCommand(['help'])).toEqual({ name: 'print', text: HELP })
    expect(parseCommand(['check', '-h'])).toEqual({ name: 'print', text: HELP })
    expect(parseCommand(['help', 'passwd'])).toEqual({ name: 'print', text: PASSWD_HELP })
    expect(parseCommand(['-v'])).toEqual({ name: 'print', text: VERSION })
  })

  test('rule test keeps its options for the command to check', () => {
    expect(parseCommand(['rule', 'test', 'r.js', '--topic', 't', '--payload-hex', '00', '--client-id', 'c', '--username', 'u', '--qos', '1'])).toEqual({
      name: 'rule test', file: 'r.js', options: { all: false, topic: 't', payloadHex: '00', clientId: 'c', username: 'u', qos: '1' }
    })
    expect(parseCommand(['rule', 'test', '--all', '-c', 'a.json'])).toEqual({ name: 'rule test', config: 'a.json', options: { all: true } })
  })

  test.each([
    [['frobnicate'], "unknown command 'frobnicate'"],
    [['check', 'extra'], "unknown command 'check extra'"],
    [['help', 'me'], "unknown command 'help me'"],
    [['rule', 'test', 'a.js', 'b.js'], "unknown command 'rule test a.js b.js'"],
    [['start', '--topic', 't'], "--topic only applies to 'rule test'"],
    [['check', '--all'], "--all only applies to 'rule test'"],
    [['check', '--pid-file', 'x.pid'], "--pid-file only applies to 'start'"],
    [['--nope'], "Unknown option '--nope'"]
  ])('%j is a usage error', (argv, problem) => {
    const command = parseCommand(argv)
    expect(command.name).toBe('usage')
    expect(command.name === 'usage' && command.problem).toContain(problem)
  })
})
