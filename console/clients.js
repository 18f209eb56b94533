/* Clients: who is connected, since when, to what, with a Disconnect button each. */
import { html, useState, usePoll } from './lib.js'
import { get, post } from './api.js'
import { dateTime } from './format.js'

const topicOf = s => (typeof s === 'string' ? s : s.topic ?? s.filter ?? JSON.stringify(s))
const qosOf = s => (typeof s === 'object' && s !== null && typeof s.qos === 'number' ? ` (QoS ${s.qos})` : '')

export function Clients () {
  const [clients, setClients] = useState(null)
  const [error, setError] = useState('')
  const [notice, setNotice] = useState('')
  const load = () => get('/api/clients').then(v => { setClients(Array.isArray(v) ? v : v?.clients ?? []); setError('') }, err => {
    setError(err.message)
    // A cluster node without Redis answers 503 with its own clients only: show those.
    if (Array.isArray(err.body?.clients)) setClients(err.body.clients)
  })
  usePoll(load, 2000)

  const disconnect = async id => {
    try {
      await post('/api/clients/' + encodeURIComponent(id) + '/disconnect')
      setNotice(`Disconnected ${id}.`)
      await load()
    } catch (err) {
      setError(`${id} not disconnected: ${err.message}`)
    }
  }

  return html`
    <h1>Clients</h1>
    ${error ? html`<p role="alert" class="error">${error}</p>` : null}
    ${notice ? html`<p role="status" class="ok">${notice}</p>` : null}
    <div class="scroll">
      <table>
        <thead><tr>
          <th scope="col">Client id</th><th scope="col">Username</th><th scope="col">Address</th>
          <th scope="col">Connected since</th><th scope="col">Subscriptions</th><th scope="col"><span class="sr-only">Actions</span></th>
        </tr></thead>
        <tbody>
          ${(clients ?? []).map(c => html`
            <tr key=${c.clientId}>
              <td class="mono">${c.clientId}${c.node ? html` <span class="badge">${c.node}</span>` : null}</td>
              <td>${c.username ?? ''}</td>
              <td class="mono">${c.remote ?? ''}</td>
              <td>${dateTime(c.connectedAt)}</td>
              <td class="mono">${(c.subscriptions ?? []).map(s => html`<div key=${topicOf(s)}>${topicOf(s)}${qosOf(s)}</div>`)}</td>
              <td><button type="button" class="danger" title=${'Disconnect ' + c.clientId} onClick=${() => disconnect(c.clientId)}>Disconnect</button></td>
            </tr>`)}
        </tbody>
      </table>
      ${clients && clients.length === 0 ? html`<p class="empty">No clients connected.</p>` : null}
    </div>`
}
