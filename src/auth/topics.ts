/* MQTT topic-filter semantics, as pure functions [MQTT-4.7]. */

/** Does `filter` match `topic`? A filter starting with a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1]. */
export function topicMatches (filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
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
  if (inner.startsWith('$') && (outer.startsWith('+') || outer.startsWith('#'))) return false
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
