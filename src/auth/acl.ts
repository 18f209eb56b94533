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
import { closest } from '../suggest.js'
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

/**
 * `errors` make the file invalid; `warnings` are lines that Mosquitto accepts
 * with the same meaning, but that most likely hold a typo (`file:line` is
 * logged at load and printed by `switchyard check`).
 */
export function parseAcl (text: string): { acl: Acl, errors: LineError[], warnings: LineError[] } {
  const anonymous: Entry[] = []
  const users = new Map<string, Entry[]>()
  const patterns: Entry[] = []
  const errors: LineError[] = []
  const warnings: LineError[] = []
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
    // Mosquitto (security_default.c): with one word, it is the topic; with
    // more, the first is the access and the rest of the line the topic.
    if (rest.length === 0) return error(`"${keyword}" needs a topic filter`)
    let access: Access = 'readwrite'
    let words = rest
    if (rest.length > 1) {
      if (!ACCESS.has(rest[0] as Access)) {
        // Mosquitto refuses such a line too ("Invalid topic access type").
        const guess = closest(rest[0]!, [...ACCESS])
        return error(`topic "${rest.join(' ')}" contains a space${guess ? `, did you mean \`${guess}\`?` : ';'} ` +
          `"${rest[0]}" is not an access (read, write, readwrite or deny); a topic with a space needs the access first: ${keyword} readwrite ${rest.join(' ')}`)
      }
      access = rest[0] as Access
      words = rest.slice(1)
    } else if (ACCESS.has(rest[0] as Access)) {
      // Mosquitto reads `topic read` as readwrite on a topic named "read"; we refuse it, since it is surely a line cut short.
      return error(`"${keyword} ${rest[0]}" needs a topic filter after the access`)
    }
    const filter = words.join(' ')
    const problem = filterProblem(keyword === 'pattern' ? filter.replace(/%[uc]/g, 'x') : filter)
    if (problem) return error(`topic filter "${filter}" ${problem}`)
    warnings.push(...lineWarnings(keyword, filter).map(message => ({ line: i + 1, message })))
    ;(keyword === 'pattern' ? patterns : current).push({ access, filter })
  })
  return { acl: { anonymous, users, patterns }, errors, warnings }
}

/** Lines that Mosquitto accepts, and we too, with the same meaning, but that most likely do not say what was meant. */
function lineWarnings (keyword: 'topic' | 'pattern', filter: string): string[] {
  const warnings: string[] = []
  if (filter.includes(' ')) {
    warnings.push(`topic "${filter}" contains a space; as in Mosquitto, the rest of the line after the access is the topic`)
  }
  if (keyword === 'pattern') {
    // Mosquitto substitutes only %u and %c; anything else stays literal.
    for (const [unknown] of filter.matchAll(/%([^uc]|$)/g)) {
      warnings.push(`pattern "${filter}": unknown substitution "${unknown}"; only %u (username) and %c (client id) are substituted, so it matches "${unknown}" literally`)
    }
  } else if (/%[uc]/.test(filter)) {
    warnings.push(`topic "${filter}": %u and %c are substituted only in "pattern" lines; did you mean \`pattern\`?`)
  }
  return warnings
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
