import { describe, expect, test } from 'vitest'
import { createRequire } from 'node:module'
import { FailureBackoff } from '../../src/auth/backoff.js'
import { hashPassword, parseHash, parsePasswordFile, verifyPassword } from '../../src/auth/passwords.js'

// Lines written by Debian's mosquitto_passwd 2.0.11 on this machine:
//   mosquitto_passwd -c -b pw alice s3cret; mosquitto_passwd -H sha512 -b pw carol pw3
const MOSQUITTO = `alice:$7$101$v7Z63vgr7BJWmSFO$e0CYKRwBpqPljxp58ZeaboxMY6rSdnFhcz9Evln3PGZ5p+srF6tqZWe3bu52tI5rrbnCI7GQy+by772p+YDBgA==
carol:$6$OIPM4ZFaOe8f3qw5$lLNpCzagQDlW4Bmm+YSi9P6qz2nmAwRP8f7Hq1Y1e3jInUwFZcsQKDa+ff3tORvSzocH4LQCfXSvPpKPrE+kXQ==
`

describe('password file', () => {
  test('reads mosquitto_passwd $7$ (PBKDF2-SHA512) and $6$ (SHA-512) lines', async () => {
    const { users, errors } = parsePasswordFile(MOSQUITTO)
    expect(errors).toEqual([])
    expect(await verifyPassword(users.get('alice')!, Buffer.from('s3cret'))).toBe(true)
    expect(await verifyPassword(users.get('alice')!, Buffer.from('s3creT'))).toBe(false)
    expect(await verifyPassword(users.get('carol')!, Buffer.from('pw3'))).toBe(true)
    expect(await verifyPassword(users.get('carol')!, Buffer.from(''))).toBe(false)
  })

  test('reads argon2id lines (Mosquitto 2.1)', async () => {
    const argon2 = createRequire(import.meta.url)('@node-rs/argon2') as { hash(p: string): Promise<string> }
    const line = `dave:${await argon2.hash('correct horse')}`
    expect(line).toMatch(/^dave:\$argon2id\$v=19\$/)
    const { users } = parsePasswordFile(line)
    expect(await verifyPassword(users.get('dave')!, Buffer.from('correct horse'))).toBe(true)
    expect(await verifyPassword(users.get('dave')!, Buffer.from('wrong'))).toBe(false)
  })

  test('writes $7$ lines that verify, with a fresh salt each time', async () => {
    const a = await hashPassword('pw')
    const b = await hashPassword('pw')
    expect(a).toMatch(/^\$7\$10000\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$/)
    expect(a).not.toBe(b)
    expect(await verifyPassword(parseHash(a) as Exclude<ReturnType<typeof parseHash>, string>, Buffer.from('pw'))).toBe(true)
  })

  test('errors name the line; comments and blank lines are fine', () => {
    expect(parsePasswordFile('# users\n\nalice:plaintext\nbob\ncarol:$9$x$y\n').errors).toEqual([
      { line: 3, message: 'user alice: the password is not hashed; hash the file with `switchyard passwd -U <file>` (or mosquitto_passwd -U)' },
      { line: 4, message: 'expected user:hash' },
      { line: 5, message: 'user carol: unknown hash format $9$ (expected $7$, $6$ or $argon2id$)' }
    ])
  })
})

describe('failure backoff', () => {
  test('free attempts, then doubling waits per address, capped; success clears; others unaffected', () => {
    let now = 0
    const b = new FailureBackoff({ free: 3, baseMs: 250, maxMs: 2000, now: () => now })
    expect([1, 2, 3, 4, 5, 6, 7, 8].map(() => b.fail('10.0.0.1'))).toEqual([0, 0, 0, 250, 500, 1000, 2000, 2000])
    expect(b.fail('10.0.0.2')).toBe(0)
    b.succeed('10.0.0.1')
    expect(b.fail('10.0.0.1')).toBe(0)
  })

  test('failures are forgotten after a quiet period', () => {
    let now = 0
    const b = new FailureBackoff({ free: 1, baseMs: 100, forgetAfterMs: 1000, now: () => now })
    b.fail('a'); expect(b.fail('a')).toBe(100)
    now = 5000
    expect(b.fail('a')).toBe(0)
  })
})
