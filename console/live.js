/*
 * Live: the messages under a topic filter, newest first (Peakboard's table of
 * Timestamp, Topic and Message). The broker never waits for this page: the
 * server drops what a slow stream cannot take and says how many
 * (`event: dropped`), and this page keeps at most MAX_ROWS messages waiting
 * and MAX_ROWS shown, parses only what it shows, and renders at most once a
 * frame; what it had to skip is counted too.
 */
import { html, Component, useState, useEffect, useRef } from './lib.js'
import { get } from './api.js'
import { formatPayload, clock, number } from './format.js'

export const MAX_ROWS = 1000

class Row extends Component {
  // Rows never change once made: a frame re-renders only the rows it adds.
  shouldComponentUpdate (next) { return next.row !== this.props.row }
  render ({ row }) {
    const shown = row.shown
    return html`
      <tr>
        <td class="ts"><time datetime=${row.iso} title=${row.iso}>${clock(row.ts)}</time></td>
        <td class="topic" title=${row.from}>${row.topic}</td>
        <td class=${'msg ' + shown.kind}>${shown.kind === 'hex' ? html`<span class="badge">hex</span> ` : null}<pre>${shown.text}</pre></td>
        <td class="num">${row.qos}</td>
        <td>${row.retain ? 'retained' : ''}</td>
      </tr>`
  }
}

function freshStore () {
  // serverBase: what earlier connections of this stream dropped (each new connection counts from 0)
  return { rows: [], pending: [], serverDropped: 0, serverBase: 0, browserDropped: 0, seq: 0, frame: 0, paused: false }
}

export function Live () {
  const [draft, setDraft] = useState('#')
  const [filter, setFilter] = useState('#')
  const [paused, setPaused] = useState(false)
  const [status, setStatus] = useState('connecting')
  const [, setTick] = useState(0)
  const store = useRef(freshStore()).current

  const redraw = () => setTick(t => t + 1)

  const flush = () => {
    store.frame = 0
    const { pending } = store
    if (!store.paused && pending.length > 0) {
      const skipped = Math.max(0, pending.length - MAX_ROWS)
      store.browserDropped += skipped
      const fresh = []
      for (let i = pending.length - 1; i >= skipped; i--) fresh.push(toRow(pending[i], store.seq++))
      store.pending = []
      store.rows = fresh.concat(store.rows.length + fresh.length > MAX_ROWS ? store.rows.slice(0, MAX_ROWS - fresh.length) : store.rows)
    }
    redraw()
  }
  const schedule = () => { if (store.frame === 0) store.frame = requestAnimationFrame(flush) }

  useEffect(() => {
    // A new filter starts a new table; only "paused" carries over.
    Object.assign(store, freshStore(), { paused: store.paused })
    setStatus('connecting')
    const source = new EventSource('/api/stream?filter=' + encodeURIComponent(filter))
    source.addEventListener('open', () => {
      store.serverBase = store.serverDropped
      setStatus('connected')
    })
    source.addEventListener('message', e => {
      // Kept as text: parsing waits until the message is going to be shown.
      store.pending.push(e.data)
      if (store.pending.length > 2 * MAX_ROWS) {
        store.browserDropped += store.pending.length - MAX_ROWS
        store.pending = store.pending.slice(-MAX_ROWS)
      }
      schedule()
    })
    source.addEventListener('dropped', e => {
      try { store.serverDropped = store.serverBase + (Number(JSON.parse(e.data).dropped) || 0) } catch {}
      schedule()
    })
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) {
        setStatus('closed')
        // A closed stream is most often an expired session: asking makes the console show the sign-in form.
        get('/api/session').catch(() => {})
      } else {
        setStatus('reconnecting')
      }
    })
    return () => {
      source.close()
      if (store.frame) cancelAnimationFrame(store.frame)
      store.frame = 0
    }
  }, [filter])

  const apply = e => {
    e.preventDefault()
    const next = draft.trim() || '#'
    if (next !== filter) setFilter(next)
  }
  const togglePause = () => {
    store.paused = !store.paused
    setPaused(store.paused)
    schedule()
  }
  const clear = () => {
    store.rows = []
    store.pending = []
    store.browserDropped = 0
    redraw()
  }

  return html`
    <h1>Live</h1>
    <form class="toolbar" onSubmit=${apply}>
      <label for="live-filter">Topic filter</label>
      <input id="live-filter" class="mono" value=${draft} onInput=${e => setDraft(e.target.value)} spellcheck="false" />
      <button type="submit">Apply</button>
      <button type="button" onClick=${togglePause}>${paused ? 'Resume' : 'Pause'}</button>
      <button type="button" onClick=${clear}>Clear</button>
      <span class=${'pill ' + status} role="status" aria-label=${'Stream ' + status}>${status}</span>
    </form>
    <p class="counters">
      <span>Showing ${number(store.rows.length)} of the last ${number(MAX_ROWS)} on <code>${filter}</code></span>
      ${paused ? html`<span>Paused: ${number(store.pending.length)} waiting</span>` : null}
      ${status === 'closed' ? html`<span class="error">The stream closed: the filter may be invalid, or the session ended.</span>` : null}
      <span>Dropped by the server: <strong data-counter="server-dropped">${number(store.serverDropped)}</strong></span>
      <span>Dropped by this browser: <strong data-counter="browser-dropped">${number(store.browserDropped)}</strong></span>
    </p>
    <div class="scroll">
      <table class="live">
        <caption class="sr-only">Messages on ${filter}, newest first</caption>
        <thead><tr><th scope="col">Timestamp</th><th scope="col">Topic</th><th scope="col">Message</th><th scope="col">QoS</th><th scope="col">Retain</th></tr></thead>
        <tbody>${store.rows.map(row => html`<${Row} key=${row.id} row=${row} />`)}</tbody>
      </table>
      ${store.rows.length === 0 ? html`<p class="empty">No messages yet.</p>` : null}
    </div>`
}

function toRow (data, id) {
  let m
  try { m = JSON.parse(data) } catch { m = { topic: '?', payload: String(data), encoding: 'utf8' } }
  const ts = new Date(m.ts ?? Date.now()).getTime()
  const at = Number.isNaN(ts) ? Date.now() : ts
  return { id, ts: at, iso: new Date(at).toISOString(), topic: m.topic, qos: m.qos ?? 0, retain: Boolean(m.retain), from: describeOrigin(m.origin), shown: formatPayload(m.payload, m.encoding) }
}

/** "published by client press-4", "published by rule telemetry", ... for the topic's tooltip. */
function describeOrigin (origin) {
  if (!origin || typeof origin !== 'object') return undefined
  const who = origin.kind === 'rule' && origin.rule ? `rule ${origin.rule}` : origin.kind === 'client' && origin.clientId ? `client ${origin.clientId}` : origin.kind
  return who ? `published by ${who}` : undefined
}
