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

  test('errors name the line', () => {
    const bad = parseAcl('user x\ntopic\nfrobnicate a/b\ntopic read a/#/b\npattern read %u/#\nuser\n')
    expect(bad.errors).toEqual([
      { line: 2, message: '"topic" needs a topic filter' },
      { line: 3, message: 'unknown keyword "frobnicate" (expected user, topic or pattern)' },
      { line: 4, message: 'topic filter "a/#/b" "#" must be a whole level and the last one' },
      { line: 6, message: '"user" needs a name' }
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
