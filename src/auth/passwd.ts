/*
 * `switchyard passwd`: mosquitto_passwd's file operations. Lines keep their
 * order and comments; the file is replaced atomically and kept mode 0600.
 */
import { randomBytes } from 'node:crypto'
import { chmod, readFile, rename, writeFile } from 'node:fs/promises'
import { hashPassword, parseHash } from './passwords.js'

export function usernameProblem (user: string): string | undefined {
  if (user === '') return 'the username is empty'
  if (user.includes(':')) return 'a username cannot contain ":"'
  if (/[\r\n]/.test(user)) return 'a username cannot contain a line break'
  return undefined
}

/** Sets (adds or replaces) a user's password. `create` starts a new file. */
export async function setPassword (file: string, user: string, password: string, create: boolean): Promise<void> {
  const lines = create ? [] : await readLines(file)
  const line = `${user}:${await hashPassword(password)}`
  const at = lines.findIndex(l => userOf(l) === user)
  if (at >= 0) lines[at] = line
  else lines.push(line)
  await writeLines(file, lines)
}

/** Removes a user; false when there was none. */
export async function deleteUser (file: string, user: string): Promise<boolean> {
  const lines = await readLines(file)
  const kept = lines.filter(l => userOf(l) !== user)
  if (kept.length === lines.length) return false
  await writeLines(file, kept)
  return true
}

/** Hashes every `user:plain-password` line in place (mosquitto_passwd -U). Returns how many were hashed. */
export async function hashFile (file: string): Promise<{ hashed: number, alreadyHashed: number }> {
  const lines = await readLines(file)
  let hashed = 0
  let alreadyHashed = 0
  for (let i = 0; i < lines.length; i++) {
    const user = userOf(lines[i]!)
    if (user === undefined) continue
    const rest = lines[i]!.slice(user.length + 1)
    if (typeof parseHash(rest) !== 'string') { alreadyHashed++; continue }
    lines[i] = `${user}:${await hashPassword(rest)}`
    hashed++
  }
  await writeLines(file, lines)
  return { hashed, alreadyHashed }
}

function userOf (line: string): string | undefined {
  const t = line.trim()
  if (t === '' || t.startsWith('#')) return undefined
  const colon = line.indexOf(':')
  return colon > 0 ? line.slice(0, colon) : undefined
}

async function readLines (file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8')
  const lines = text.split(/\r?\n/)
  if (lines.at(-1) === '') lines.pop()
  return lines
}

async function writeLines (file: string, lines: string[]): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`
  await writeFile(tmp, lines.map(l => l + '\n').join(''), { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, file)
}
