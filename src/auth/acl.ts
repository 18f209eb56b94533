/*
 * Mosquitto's acl_file, parsed and checked as pure functions:
 *
 *   # lines before any `user` line apply to anonymous clients
 *   topic read $SYS/#
 *   user alice
 *   topic readwrite devices/alice/#      # access: read | write | readwrite | deny; default readwrite
 *   topic deny devices/alice/secret
 *   pattern write devices/%u/telemetry   # every client; %u username, %c client id
 *
 * With an ACL, everything not granted is denied, and `deny` wins.
 */
import { filterCovers, filterProblem, topicMatches } from '../topics.js'
import type { LineError } from './passwords.js'

export type Access = 'read' | 'write' | 'readwrite' | 'deny'

interface Entry { access: Access, filter: string }

export interface Acl {
  /** `topic` lines before the first `user` line. */
  anonymous: readonly Entry[]
  /** `topic` lines per user. */
  users: ReadonlyMap<string, readonly Entry[]>
  /** `pattern` lines, for every client. */
  patterns: readonly Entry[]
}

export interface Who { username: string | null, clientId: string }

const ACCESS = new Set<Access>(['read', 'write', 'readwrite', 'deny'])

export function parseAcl (text: string): { acl: Acl, errors: LineError[] } {
  const anonymous: Entry[] = []
  const users = new Map<string, Entry[]>()
  const patterns: Entry[] = []
  const errors: LineError[] = []
  let current: Entry[] = anonymous
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const [keyword, ...rest] = line.split(/\s+/)
    const error = (message: string) => errors.push({ line: i + 1, message })
    if (keyword === 'user') {
      // Mosquitto takes the rest of the line, so a username may contain spaces.
      const name = line.slice(4).trim()
      if (name === '') return error('"user" needs a name')
      current = users.get(name) ?? []
      users.set(name, current)
      return
    }
    if (keyword !== 'topic' && keyword !== 'pattern') return error(`unknown keyword "${keyword}" (expected user, topic or pattern)`)
    let access: Access = 'readwrite'
    let words = rest
    if (words.length > 1 && ACCESS.has(words[0] as Access)) {
      access = words[0] as Access
      words = words.slice(1)
    }
    // Mosquitto allows spaces in topics: the filter is the rest of the line.
    const filter = words.join(' ')
    if (filter === '') return error(`"${keyword}" needs a topic filter`)
    const problem = filterProblem(keyword === 'pattern' ? filter.replace(/%[uc]/g, 'x') : filter)
    if (problem) return error(`topic filter "${filter}" ${problem}`)
    ;(keyword === 'pattern' ? patterns : current).push({ access, filter })
  })
  return { acl: { anonymous, users, patterns }, errors }
}

/** The entries that apply to a client, patterns substituted. */
function entriesFor (acl: Acl, who: Who): Entry[] {
  const own = who.username === null ? acl.anonymous : acl.users.get(who.username) ?? []
  const patterns = acl.patterns.flatMap(p => {
    // A pattern naming %u cannot apply to an anonymous client.
    if (p.filter.includes('%u') && who.username === null) return []
    // A substituted value must not smuggle wildcards or levels in.
    const bad = (v: string) => /[+#/]/.test(v)
    if ((p.filter.includes('%u') && bad(who.username ?? '')) || (p.filter.includes('%c') && bad(who.clientId))) return []
    return [{ access: p.access, filter: p.filter.replace(/%u/g, who.username ?? '').replace(/%c/g, who.clientId) }]
  })
  return [...own, ...patterns]
}

const grants = (access: Access, need: 'read' | 'write') => access === 'readwrite' || access === need

export interface AccessChecks {
  /** May this client publish to `topic`? */
  canWrite(topic: string): boolean
  /** May this client receive a message on `topic` (delivery, retained messages included)? */
  canRead(topic: string): boolean
  /**
   * May this client subscribe to `filter`? Read must be granted for every
   * topic the filter can match, and no deny may cover it. A wider
   * subscription with some denied topics inside is allowed; delivery then
   * filters the denied topics out (canRead).
   */
  canSubscribe(filter: string): boolean
}

/** One client's checks, with its entries (patterns substituted) computed once. */
export function compileAccess (acl: Acl, who: Who): AccessChecks {
  const entries = entriesFor(acl, who)
  return {
    canWrite: topic => check(entries, 'write', e => topicMatches(e.filter, topic)),
    canRead: topic => check(entries, 'read', e => topicMatches(e.filter, topic)),
    canSubscribe: filter => !entries.some(e => e.access === 'deny' && filterCovers(e.filter, filter)) &&
      entries.some(e => grants(e.access, 'read') && filterCovers(e.filter, filter))
  }
}

export const canWrite = (acl: Acl, who: Who, topic: string) => compileAccess(acl, who).canWrite(topic)
export const canRead = (acl: Acl, who: Who, topic: string) => compileAccess(acl, who).canRead(topic)
export const canSubscribe = (acl: Acl, who: Who, filter: string) => compileAccess(acl, who).canSubscribe(filter)

function check (entries: Entry[], need: 'read' | 'write', matches: (e: Entry) => boolean): boolean {
  let granted = false
  for (const e of entries) {
    if (!matches(e)) continue
    if (e.access === 'deny') return false
    if (grants(e.access, need)) granted = true
  }
  return granted
}
