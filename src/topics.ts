/* MQTT topic and topic-filter semantics, as pure functions [MQTT-4.7], for the ACL, the rules and the broker. */

/** [MQTT-1.5.3] a UTF-8 string field holds at most 65,535 bytes. */
export const MAX_TOPIC_BYTES = 65535

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
  if (Buffer.byteLength(filter) > MAX_TOPIC_BYTES) return 'is longer than 65535 bytes'
  if (filter.includes('\u0000')) return 'must not contain the NUL character'
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!
    // [MQTT-4.7.1-2] '#' alone, and last; [MQTT-4.7.1-3] '+' alone in its level
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return `"#" must be a whole level and the last one`
    if (level.includes('+') && level !== '+') return `"+" must be a whole level`
  }
  return undefined
}

/** Does `filter` match `topic`? A filter starting with a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1]. */
export function topicMatches (filter: string, topic: string): boolean {
  if (topic.startsWith('$') && wildcardFirst(filter)) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true // [MQTT-4.7.1-2] also matches the parent level
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}

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
