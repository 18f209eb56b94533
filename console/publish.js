/* Publish: one message, as Peakboard's Publish and publishretain blocks do. */
import { html, useState, useSubmit } from './lib.js'
import { post } from './api.js'

export function Publish () {
  const [topic, setTopic] = useState('')
  const [message, setMessage] = useState('')
  const [qos, setQos] = useState('0')
  const [retain, setRetain] = useState(false)
  const { submit, busy, result } = useSubmit(async () => {
    await post('/api/publish', { topic, payload: message, encoding: 'utf8', qos: Number(qos), retain })
    return { ok: true, text: `Published to ${topic} (QoS ${qos}${retain ? ', retained' : ''}).` }
  }, err => ({ ok: false, text: `Not published: ${err.message}` }))

  return html`
    <h1>Publish</h1>
    <form class="card form" onSubmit=${submit}>
      <label for="pub-topic">Topic</label>
      <input id="pub-topic" class="mono" required value=${topic} onInput=${e => setTopic(e.target.value)} spellcheck="false" placeholder="factory/line1/cmd" />
      <label for="pub-message">Message</label>
      <textarea id="pub-message" class="mono" rows="8" value=${message} onInput=${e => setMessage(e.target.value)} spellcheck="false" placeholder='{"start": true}'></textarea>
      <label for="pub-qos">QoS</label>
      <select id="pub-qos" value=${qos} onChange=${e => setQos(e.target.value)}>
        <option value="0">0 (at most once)</option>
        <option value="1">1 (at least once)</option>
        <option value="2">2 (exactly once)</option>
      </select>
      <label class="check"><input type="checkbox" checked=${retain} onChange=${e => setRetain(e.target.checked)} /> Retain</label>
      <div><button type="submit" disabled=${busy}>Publish</button></div>
      ${result ? html`<p role=${result.ok ? 'status' : 'alert'} class=${result.ok ? 'ok' : 'error'}>${result.text}</p>` : null}
    </form>`
}
