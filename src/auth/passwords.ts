/*
 * Mosquitto's password file, read and written the way mosquitto_passwd does:
 *
 *   user:$7$<iterations>$<salt, base64>$<PBKDF2-HMAC-SHA512, 64 bytes, base64>   (Mosquitto 2.0)
 *   user:$6$<salt, base64>$<SHA-512(password || salt), base64>                    (Mosquitto 1.x)
 *   user:$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>                          (Mosquitto 2.1)
 *
 * A file made by the real mosquitto_passwd works here, and one made by
 * `switchyard passwd` works in a real Mosquitto (both tested).
 */
import { createHash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'
import { createRequire } from 'node:module'

const pbkdf2Async = promisify(pbkdf2)

/** Our default: Mosquitto 2.0's format; Mosquitto reads the iteration count from each line. ~5 ms per check here. */
export const DEFAULT_ITERATIONS = 10_000
const SALT_BYTES = 12
const HASH_BYTES = 64

export type PasswordHash =
  | { kind: 'pbkdf2', iterations: number, salt: Buffer, hash: Buffer }
  | { kind: 'sha512', salt: Buffer, hash: Buffer }
  | { kind: 'argon2id', encoded: string }

export interface LineError { line: number, message: string }

export interface PasswordFile {
  users: Map<string, PasswordHash>
  errors: LineError[]
}

export function parsePasswordFile (text: string): PasswordFile {
  const users = new Map<string, PasswordHash>()
  const errors: LineError[] = []
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const colon = line.indexOf(':')
    if (colon <= 0) { errors.push({ line: i + 1, message: 'expected user:hash' }); return }
    const user = line.slice(0, colon)
    const parsed = parseHash(line.slice(colon + 1))
    if (typeof parsed === 'string') errors.push({ line: i + 1, message: `user ${user}: ${parsed}` })
    else users.set(user, parsed)
  })
  return { users, errors }
}

/** Parses the part after `user:`; returns a problem as a string. */
export function parseHash (text: string): PasswordHash | string {
  if (text.startsWith('$argon2id$')) return { kind: 'argon2id', encoded: text }
  const p = text.split('$')
  if (p[0] !== '' || p.length < 4) return 'the password is not hashed; hash the file with `switchyard passwd -U <file>` (or mosquitto_passwd -U)'
  if (p[1] === '7' && p.length === 5) {
    const iterations = Number(p[2])
    if (!Number.isInteger(iterations) || iterations < 1) return 'bad iteration count in $7$ hash'
    return { kind: 'pbkdf2', iterations, salt: Buffer.from(p[3]!, 'base64'), hash: Buffer.from(p[4]!, 'base64') }
  }
  if (p[1] === '6' && p.length === 4) return { kind: 'sha512', salt: Buffer.from(p[2]!, 'base64'), hash: Buffer.from(p[3]!, 'base64') }
  return `unknown hash format $${p[1]}$ (expected $7$, $6$ or $argon2id$)`
}

/** Checks a password against a hash. Comparison is constant-time; PBKDF2 and argon2 run off the event loop. */
export async function verifyPassword (stored: PasswordHash, password: Buffer): Promise<boolean> {
  switch (stored.kind) {
    case 'pbkdf2': {
      const derived = await pbkdf2Async(password, stored.salt, stored.iterations, stored.hash.length || HASH_BYTES, 'sha512')
      return derived.length === stored.hash.length && timingSafeEqual(derived, stored.hash)
    }
    case 'sha512': {
      const derived = createHash('sha512').update(password).update(stored.salt).digest()
      return derived.length === stored.hash.length && timingSafeEqual(derived, stored.hash)
    }
    case 'argon2id':
      try {
        return await argon2().verify(stored.encoded, password)
      } catch {
        return false
      }
  }
}

/** The hash mosquitto_passwd 2.0 writes ($7$), with our iteration default. */
export async function hashPassword (password: string, iterations = DEFAULT_ITERATIONS): Promise<string> {
  const salt = randomBytes(SALT_BYTES)
  const hash = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, HASH_BYTES, 'sha512')
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`
}

let argon2Module: { verify(hash: string, password: Buffer): Promise<boolean> } | undefined
// Loaded on first use: most files never hold an argon2id line.
function argon2 (): { verify(hash: string, password: Buffer): Promise<boolean> } {
  argon2Module ??= createRequire(import.meta.url)('@node-rs/argon2') as { verify(hash: string, password: Buffer): Promise<boolean> }
  return argon2Module
}
