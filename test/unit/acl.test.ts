import { describe, expect, test } from 'vitest'
import { canRead, canSubscribe, canWrite, parseAcl } from '../../src/auth/acl.js'
import { filterCovers, topicMatches } from '../../src/topics.js'

const ACL = `
# anonymous clients
topic read public/#
topic read $SYS/broker/#

user alice
topic readwrite devices/alice/#
topic deny devices/alice/secret
topic write commands/+
topic read telemetry/#

user bob smith
topic plant/#

pattern write devices/%u/telemetry
pattern read clients/%c/inbox
`
const { acl, errors } = parseAcl(ACL)
const alice = { username: 'alice', clientId: 'a1' }
const bob = { username: 'bob smith', clientId: 'b1' }
const anon = { username: null, clientId: 'anon-1' }
const carol = { username: 'carol', clientId: 'c1' }

describe('parseAcl', () => {
  test('a valid file has no errors', () => expect(errors).toEqual([]))
  test('and no warnings', () => expect(parseAcl(ACL).warnings).toEqual([]))

  test('errors name the line', () => {
    const bad = parseAcl('user x\ntopic\nfrobnicate a/b\ntopic read a/#/b\npattern read %u/#\nuser\n')
    expect(bad.errors).toEqual([
      { line: 2, message: '"topic" needs a topic filter' },
      { line: 3, message: 'unknown keyword "frobnicate" (expected user, topic or pattern)' },
      { line: 4, message: 'topic filter "a/#/b" "#" must be a whole level and the last one' },
      { line: 6, message: '"user" needs a name' }
    ])
  })

  test('"topic read" with no topic is an error, not a grant on a topic named "read" (Mosquitto\'s reading)', () => {
    const bad = parseAcl('user carol\ntopic read\npattern deny\n')
    expect(bad.errors).toEqual([
      { line: 2, message: '"topic read" needs a topic filter after the access' },
      { line: 3, message: '"pattern deny" needs a topic filter after the access' }
    ])
  })

  test('a misspelt access is an error naming the line and the fix, as Mosquitto refuses it too', () => {
    const typo = parseAcl('user carol\ntopic raed devices/carol/#\ntopic plant/line 1\n')
    expect(typo.errors).toEqual([
      { line: 2, message: 'topic "raed devices/carol/#" contains a space, did you mean `read`? "raed" is not an access (read, write, readwrite or deny); a topic with a space needs the access first: topic readwrite raed devices/carol/#' },
      { line: 3, message: 'topic "plant/line 1" contains a space; "plant/line" is not an access (read, write, readwrite or deny); a topic with a space needs the access first: topic readwrite plant/line 1' }
    ])
  })

  test('after the access, a topic with a space keeps Mosquitto\'s meaning (the rest of the line), with a warning', () => {
    const parsed = parseAcl('user carol\ntopic read plant/line 1\n')
    expect(parsed.errors).toEqual([])
    expect(parsed.warnings).toEqual([{ line: 2, message: 'topic "plant/line 1" contains a space; as in Mosquitto, the rest of the line after the access is the topic' }])
    expect(canRead(parsed.acl, carol, 'plant/line 1')).toBe(true)
  })

  test('an unknown substitution in a pattern is a warning; %u in a topic line suggests "pattern"', () => {
    const parsed = parseAcl('pattern write devices/%x/telemetry\npattern read clients/%c/%u\ntopic read devices/%u/#\n')
    expect(parsed.errors).toEqual([])
    expect(parsed.warnings).toEqual([
      { line: 1, message: 'pattern "devices/%x/telemetry": unknown substitution "%x"; only %u (username) and %c (client id) are substituted, so it matches "%x" literally' },
      { line: 3, message: 'topic "devices/%u/#": %u and %c are substituted only in "pattern" lines; did you mean `pattern`?' }
    ])
  })

  test('access defaults to readwrite; usernames and topics may contain spaces', () => {
    expect(canWrite(acl, bob, 'plant/line 1')).toBe(true)
    expect(canRead(acl, bob, 'plant/line 1')).toBe(true)
  })
})

describe('write (publish)', () => {
  test.each([
    [alice, 'devices/alice/temp', true],
    [alice, 'devices/alice/secret', false], // deny wins over readwrite devices/alice/#
    [alice, 'commands/reboot', true],
    [alice, 'telemetry/x', false], // read only
    [alice, 'devices/alice/telemetry', true], // pattern %u
    [carol, 'devices/carol/telemetry', true], // patterns apply to every user
    [carol, 'devices/alice/telemetry', false],
    [anon, 'public/x', false],
    [anon, 'devices//telemetry', false] // %u never matches an anonymous client
  ])('%o may write %s: %s', (who, topic, allowed) => expect(canWrite(acl, who, topic)).toBe(allowed))
})

describe('read (delivery, retained included)', () => {
  test.each([
    [anon, 'public/news', true],
    [anon, '$SYS/broker/uptime', true],
    [anon, '$SYS/other', false],
    [alice, 'telemetry/a/b', true],
    [alice, 'devices/alice/secret', false],
    [alice, 'commands/reboot', false], // write only
    [alice, 'clients/a1/inbox', true], // pattern %c
    [alice, 'clients/b1/inbox', false],
    [carol, 'public/news', false] // anonymous lines do not apply to users
  ])('%o may read %s: %s', (who, topic, allowed) => expect(canRead(acl, who, topic)).toBe(allowed))
})

describe('subscribe', () => {
  test.each([
    [alice, 'devices/alice/#', true],
    [alice, 'devices/alice/+', true],
    [alice, 'devices/#', false], // wider than the grant
    [alice, '#', false],
    [alice, 'devices/alice/secret', false], // covered by a deny
    [alice, 'telemetry/+/x', true],
    [anon, '$SYS/broker/#', true],
    [anon, '$SYS/#', false],
    [anon, '#', false]
  ])('%o may subscribe %s: %s', (who, filter, allowed) => expect(canSubscribe(acl, who, filter)).toBe(allowed))
})

describe('patterns cannot be abused with wildcards in ids', () => {
  test('a client id with + or # or / does not widen a %c pattern', () => {
    expect(canRead(acl, { username: 'alice', clientId: '#' }, 'clients/x/inbox')).toBe(false)
    expect(canRead(acl, { username: 'alice', clientId: 'a/b' }, 'clients/a/b/inbox')).toBe(false)
  })
})

describe('topic semantics', () => {
  test.each([
    ['a/+/c', 'a/b/c', true], ['a/#', 'a', true], ['a/#', 'a/b/c', true], ['+', 'a', true], ['+', 'a/b', false],
    ['#', '$SYS/x', false], ['+/x', '$SYS/x', false], ['$SYS/#', '$SYS/x', true], ['a/+', 'a/', true]
  ])('%s matches %s: %s', (f, t, m) => expect(topicMatches(f, t)).toBe(m))

  test.each([
    ['a/#', 'a/+/c', true], ['a/#', 'a/#', true], ['a/+', 'a/#', false], ['a/+', 'a/b', true], ['a/b', 'a/+', false],
    ['#', '$SYS/#', false], ['$SYS/#', '$SYS/broker/+', true], ['+/+', 'a/b', true], ['#', 'a/b', true]
  ])('%s covers %s: %s', (outer, inner, c) => expect(filterCovers(outer, inner)).toBe(c))
})
