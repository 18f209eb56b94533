/* Retained: the retained messages under a filter, each with a Delete button. */
import { html, useState, useEffect } from './lib.js'
import { get, del } from './api.js'
import { formatPayload } from './format.js'

export function Retained () {
  const [draft, setDraft] = useState('#')
  const [filter, setFilter] = useState('#')
  const [list, setList] = useState(null)
  const [error, setError] = useState('')
  const [notice, setNotice] = useState('')

  const load = async () => {
    try {
      setList(await get('/api/retained?filter=' + encodeURIComponent(filter)))
      setError('')
    } catch (err) {
      setError(err.message)
    }
  }
  useEffect(() => { load() }, [filter])

  const apply = e => {
    e.preventDefault()
    const next = draft.trim() || '#'
    if (next === filter) load()
    else setFilter(next)
  }
  const remove = async topic => {
    try {
      await del('/api/retained/' + encodeURIComponent(topic))
      setNotice(`Deleted the retained message on ${topic}.`)
      await load()
    } catch (err) {
      setError(`Not deleted: ${err.message}`)
    }
  }

  const messages = list?.messages ?? []
  return html`
    <h1>Retained messages</h1>
    <form class="toolbar" onSubmit=${apply}>
      <label for="retained-filter">Topic filter</label>
      <input id="retained-filter" class="mono" value=${draft} onInput=${e => setDraft(e.target.value)} spellcheck="false" />
      <button type="submit">Refresh</button>
    </form>
    ${error ? html`<p role="alert" class="error">${error}</p>` : null}
    ${notice ? html`<p role="status" class="ok">${notice}</p>` : null}
    ${list?.truncated ? html`<p class="warn">Only the first ${messages.length} are shown: narrow the filter.</p>` : null}
    <div class="scroll">
      <table>
        <thead><tr><th scope="col">Topic</th><th scope="col">Message</th><th scope="col">QoS</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>
          ${messages.map(m => {
            const shown = formatPayload(m.payload, m.encoding)
            return html`
              <tr key=${m.topic}>
                <td class="topic">${m.topic}</td>
                <td class=${'msg ' + shown.kind}>${shown.kind === 'hex' ? html`<span class="badge">hex</span> ` : null}<pre>${shown.text}</pre></td>
                <td class="num">${m.qos}</td>
                <td><button type="button" class="danger" title=${'Delete the retained message on ' + m.topic} onClick=${() => remove(m.topic)}>Delete</button></td>
              </tr>`
          })}
        </tbody>
      </table>
      ${list && messages.length === 0 ? html`<p class="empty">No retained messages on <code>${filter}</code>.</p>` : null}
    </div>`
}
