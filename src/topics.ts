/* MQTT topic and topic-filter semantics, as pure functions [MQTT-4.7], for the ACL, the rules and the broker. */
import { isUtf8 } from 'node:buffer'

/** [MQTT-1.5.3] a UTF-8 string field holds at most 65,535 bytes. */
export const MAX_TOPIC_BYTES = 65535

// A UTF-16 surrogate not part of a pair: a JS string that has no UTF-8 encoding
// (Buffer.from would silently turn it into U+FFFD) [MQTT-1.5.3-1].
const LONE_SURROGATE = /\p{Surrogate}/u

/** Where a received string field's bytes can be read: a Buffer, or the parser's buffer list. */
export interface ByteSource {
  slice(start: number, end: number): Uint8Array
}

/**
 * What is wrong with a UTF-8 string field received from the network, or
 * undefined. `text` is the field as Buffer#toString decoded `bytes[start, end)`.
 * That decoder turns every ill-formed sequence (a stray or truncated byte, an
 * overlong form, an encoded surrogate, a code point past U+10FFFF) into
 * U+FFFD, so the bytes are looked at only when U+FFFD is there, which a
 * well-formed U+FFFD (EF BF BD) can also be. Any other string costs two scans
 * of the decoded text and no allocation.
 */
export function receivedStringProblem (text: string, bytes: ByteSource, start: number, end: number): string | undefined {
  if (text.includes('\u0000')) return 'contains U+0000 [MQTT-1.5.3-2]'
  if (text.includes('\uFFFD') && !isUtf8(bytes.slice(start, end))) return 'is not well-formed UTF-8 [MQTT-1.5.3-1]'
  return undefined
}

/** A topic name has no wildcard [MQTT-3.3.2-2] [MQTT-4.7.1-1]. */
export function hasWildcard (topic: string): boolean {
  return topic.includes('+') || topic.includes('#')
}

/**
 * Returns what is wrong with a topic name (what a message is published to,
 * as opposed to a filter), or undefined when valid. For JS strings: the API,
 * rule outputs.
 */
export function topicNameProblem (topic: unknown): string | undefined {
  if (typeof topic !== 'string' || topic.length === 0) return 'must be a non-empty string [MQTT-4.7.3-1]'
  if (hasWildcard(topic)) return 'must not contain wildcards (+ or #) [MQTT-3.3.2-2]'
  return encodingProblem(topic)
}

function encodingProblem (text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain the NUL character'
  if (LONE_SURROGATE.test(text)) return 'must be well-formed Unicode: it has a lone surrogate [MQTT-1.5.3-1]'
  if (Buffer.byteLength(text) > MAX_TOPIC_BYTES) return 'is longer than 65535 bytes'
  return undefined
}

/**
 * [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics
 * starting with '$' (such as $SYS/).
 */
export function wildcardFirst (filter: string): boolean {
  return filter.startsWith('+') || filter.startsWith('#')
}

/** Returns what is wrong with an MQTT topic filter, or undefined when valid [MQTT-4.7.1]. */
export function filterProblem (filter: unknown): string | undefined {
  if (typeof filter !== 'string' || filter.length === 0) return 'must be a non-empty string'
  const encoding = encodingProblem(filter)
  if (encoding !== undefined) return encoding
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!
    // [MQTT-4.7.1-2] '#' alone, and last; [MQTT-4.7.1-3] '+' alone in its level
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return `"#" must be a whole level and the last one`
    if (level.includes('+') && level !== '+') return `"+" must be a whole level`
  }
  return undefined
}

/**
 * Does `filter` match `topic`? A filter starting with a wildcard does not
 * match a topic starting with '$' [MQTT-4.7.2-1]. It runs for every QoS 1/2
 * delivery (grantedQoS), so it walks both strings by index, allocating nothing.
 */
export function topicMatches (filter: string, topic: string): boolean {
  if (topic.charCodeAt(0) === DOLLAR && wildcardFirst(filter)) return false
  const fl = filter.length
  const tl = topic.length
  let fi = 0
  let ti = 0
  for (;;) {
    let fe = filter.indexOf('/', fi)
    if (fe === -1) fe = fl
    const levelLength = fe - fi
    // [MQTT-4.7.1-2] '#' also matches the parent level
    if (levelLength === 1 && filter.charCodeAt(fi) === HASH) return true
    if (ti > tl) return false
    let te = topic.indexOf('/', ti)
    if (te === -1) te = tl
    if (levelLength !== 1 || filter.charCodeAt(fi) !== PLUS) {
      if (te - ti !== levelLength) return false
      for (let k = 0; k < levelLength; k++) if (filter.charCodeAt(fi + k) !== topic.charCodeAt(ti + k)) return false
    }
    if (fe === fl) return te === tl
    fi = fe + 1
    ti = te + 1
  }
}

const DOLLAR = 36
const HASH = 35
const PLUS = 43

/**
 * Does `outer` cover every topic that `inner` can match? For checking a
 * subscription filter (inner) against an ACL filter (outer): `a/#` covers
 * `a/+/c`, but `a/+` does not cover `a/#`.
 */
export function filterCovers (outer: string, inner: string): boolean {
  // '#' does not cover '$SYS/x' [MQTT-4.7.2-1]. (The other way round, '$SYS/#'
  // not covering '#', falls out of the level walk below.)
  if (inner.startsWith('$') && wildcardFirst(outer)) return false
  const o = outer.split('/')
  const n = inner.split('/')
  for (let i = 0; i < o.length; i++) {
    const level = o[i]
    if (level === '#') return true
    if (i >= n.length) return false
    const sub = n[i]
    if (sub === '#') return false // inner reaches deeper than outer can
    if (level === '+') continue
    if (sub === '+' || sub !== level) return false
  }
  return o.length === n.length
}

const SHARE_PREFIX = '$share/'

/**
 * The filter a subscription reads from: for a shared subscription
 * `$share/<name>/<filter>` [MQTT-4.8.2], `<filter>`; any other filter as it
 * is. For the ACL, which grants on topics, not on share groups.
 */
export function subscribedFilter (filter: string): string {
  if (!filter.startsWith(SHARE_PREFIX)) return filter
  const slash = filter.indexOf('/', SHARE_PREFIX.length)
  return slash === -1 ? filter : filter.slice(slash + 1)
}
