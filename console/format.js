/* How a payload is shown: pretty JSON, text, or hex for bytes that are not UTF-8 text. */
const MAX_SHOWN = 4096

function bytesOf (payload, encoding) {
  // A Node Buffer as JSON.stringify writes it: { type: 'Buffer', data: [bytes] }
  if (payload && typeof payload === 'object' && Array.isArray(payload.data)) return Uint8Array.from(payload.data)
  if (encoding !== 'base64') return null
  const bin = atob(payload ?? '')
  const bytes = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i)
  return bytes
}

// Control characters other than tab, CR and LF make text unreadable: show those payloads as bytes.
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/

/** { kind: 'json' | 'text' | 'hex' | 'empty', text } for a payload as the API sends it ({ payload, encoding }). */
export function formatPayload (payload, encoding = 'utf8') {
  let text = payload ?? ''
  const bytes = bytesOf(payload, encoding)
  if (bytes) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
      if (CONTROL.test(text)) return hex(bytes)
    } catch {
      return hex(bytes)
    }
  }
  if (text.length === 0) return { kind: 'empty', text: '(empty)' }
  const trimmed = text.trimStart()
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return { kind: 'json', text: clip(JSON.stringify(JSON.parse(text), null, 2)) }
    } catch {}
  }
  return { kind: 'text', text: clip(text) }
}

function hex (bytes) {
  const shown = bytes.subarray(0, MAX_SHOWN / 3)
  const parts = Array.from(shown, b => b.toString(16).padStart(2, '0'))
  const more = bytes.length > shown.length ? ` … (${bytes.length} bytes)` : ''
  return { kind: 'hex', text: parts.join(' ') + more }
}

function clip (text) {
  return text.length > MAX_SHOWN ? text.slice(0, MAX_SHOWN) + ` … (${text.length} characters)` : text
}

/** A time as HH:MM:SS.mmm, local. */
export function clock (ts) {
  const d = new Date(ts)
  const pad = (n, w = 2) => String(n).padStart(w, '0')
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}

export function dateTime (ts) {
  if (ts === undefined || ts === null) return ''
  const d = new Date(ts)
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString()
}

export const number = n => (typeof n === 'number' ? n.toLocaleString() : '–')
