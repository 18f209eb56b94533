/*
 * Overview: messages per second in and out, and connected clients, over the
 * last 10 minutes (GET /api/history), drawn with uPlot.
 */
import { html, useState, useEffect, useRef, usePoll } from './lib.js'
import uPlot from '/console/vendor/uPlot.esm.js'
import { get } from './api.js'
import { number } from './format.js'

const WINDOW_S = 600

function columns (samples) {
  // uPlot takes columns: x (seconds) first, then one array per series
  return [
    samples.map(s => new Date(s.ts).getTime() / 1000),
    samples.map(s => s.messagesInPerSecond ?? null),
    samples.map(s => s.messagesOutPerSecond ?? null),
    samples.map(s => s.clients ?? null)
  ]
}

function Chart ({ data }) {
  const box = useRef(null)
  const plot = useRef(null)
  useEffect(() => {
    const width = () => Math.max(320, box.current.clientWidth)
    plot.current = new uPlot({
      width: width(),
      height: 320,
      // the window is always the last 10 minutes, however few samples there are yet
      scales: { x: { time: true, range: () => { const now = Date.now() / 1000; return [now - WINDOW_S, now] } }, rate: { auto: true, range: (u, min, max) => [0, Math.max(1, max)] }, clients: { auto: true, range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [
        {},
        { scale: 'rate', label: 'messages/s' },
        { scale: 'clients', side: 1, label: 'clients', grid: { show: false } }
      ],
      series: [
        {},
        { label: 'in /s', scale: 'rate', stroke: '#2563eb', width: 2, points: { show: false } },
        { label: 'out /s', scale: 'rate', stroke: '#16a34a', width: 2, points: { show: false } },
        { label: 'clients', scale: 'clients', stroke: '#d97706', width: 2, points: { show: false }, paths: uPlot.paths.stepped({ align: 1 }) }
      ]
    }, data, box.current)
    const onResize = () => plot.current.setSize({ width: width(), height: 320 })
    addEventListener('resize', onResize)
    return () => { removeEventListener('resize', onResize); plot.current.destroy() }
  }, [])
  useEffect(() => { plot.current?.setData(data) }, [data])
  return html`<div class="chart" ref=${box} role="img" aria-label="Messages per second in and out, and connected clients, over the last 10 minutes"></div>`
}

export function Overview () {
  const [history, setHistory] = useState(null)
  const [error, setError] = useState('')
  usePoll(() => get('/api/history').then(v => { setHistory(v); setError('') }, err => setError(err.message)), 5000)

  const samples = (history?.samples ?? []).filter(s => new Date(s.ts).getTime() >= Date.now() - WINDOW_S * 1000)
  const last = samples[samples.length - 1]
  return html`
    <h1>Overview</h1>
    ${error ? html`<p role="alert" class="error">${error}</p>` : null}
    <dl class="stats">
      <div><dt>Messages in</dt><dd>${last ? number(Math.round(last.messagesInPerSecond)) : '–'}<small>/s</small></dd></div>
      <div><dt>Messages out</dt><dd>${last ? number(Math.round(last.messagesOutPerSecond)) : '–'}<small>/s</small></dd></div>
      <div><dt>Connected clients</dt><dd>${last ? number(last.clients) : '–'}</dd></div>
    </dl>
    <section class="card">
      <h2>Last 10 minutes</h2>
      ${history ? html`<${Chart} data=${columns(samples)} />` : html`<p>Loading…</p>`}
      ${history && samples.length < 2 ? html`<p class="hint">The chart fills in as samples arrive (one every ${Math.round((history.intervalMs ?? 5000) / 1000)} s).</p>` : null}
    </section>`
}
