/*
 * Rules: every rule's counters, and a page per rule with its source, its
 * last errors with their inputs, and a test form (ThingsBoard's "Test
 * decoder"), run by the server in the production sandbox.
 */
import { html, useState, usePoll, useSubmit } from './lib.js'
import { get, post } from './api.js'
import { formatPayload, dateTime, number } from './format.js'

const ruleHref = name => '#/rules/' + encodeURIComponent(name)
const ms = v => (typeof v === 'number' ? `${v.toFixed(v < 10 ? 2 : 0)} ms` : '–')
const asList = value => (Array.isArray(value) ? value : value?.rules ?? [])

export function Rules () {
  const [rules, setRules] = useState(null)
  const [error, setError] = useState('')
  usePoll(() => get('/api/rules').then(v => { setRules(asList(v)); setError('') }, err => setError(err.message)), 2000)

  return html`
    <h1>Rules</h1>
    ${error ? html`<p role="alert" class="error">${error}</p>` : null}
    <div class="scroll">
      <table>
        <thead><tr>
          <th scope="col">Rule</th><th scope="col">Status</th><th scope="col">Matched</th><th scope="col">Outputs</th>
          <th scope="col">Failed</th><th scope="col">p99</th><th scope="col">Topics</th>
        </tr></thead>
        <tbody>
          ${(rules ?? []).map(r => html`
            <tr key=${r.name}>
              <td><a href=${ruleHref(r.name)}>${r.name}</a></td>
              <td><span class=${'pill ' + r.status}>${r.status}</span></td>
              <td class="num">${number(r.matched)}</td>
              <td class="num">${number(r.outputs)}</td>
              <td class="num">${number(r.failed)}</td>
              <td class="num">${ms(r.p99Ms)}</td>
              <td class="mono">${(r.topics ?? []).join(', ')}</td>
            </tr>`)}
        </tbody>
      </table>
      ${rules && rules.length === 0 ? html`<p class="empty">No rules loaded. Put rule files in the rules directory (docs/rules.md).</p>` : null}
    </div>`
}

export function RulePage ({ name }) {
  const [rule, setRule] = useState(null)
  const [error, setError] = useState('')
  usePoll(() => get('/api/rules/' + encodeURIComponent(name)).then(v => { setRule(v); setError('') }, err => setError(err.message)), 3000, [name])

  return html`
    <p><a href="#/rules">← Rules</a></p>
    <h1>Rule ${name}</h1>
    ${error ? html`<p role="alert" class="error">${error}</p>` : null}
    ${rule ? html`
      <p class="counters">
        <span class=${'pill ' + rule.status}>${rule.status}</span>
        <span>matched ${number(rule.matched)}</span><span>outputs ${number(rule.outputs)}</span>
        <span>failed ${number(rule.failed)}</span><span>p99 ${ms(rule.p99Ms)}</span>
        <span>topics <code>${(rule.topics ?? []).join(', ')}</code></span>
      </p>
      ${rule.error ? html`<p class="error">${rule.error}</p>` : null}
      <${TestForm} name=${name} topics=${rule.topics ?? []} />
      <h2>Source</h2>
      <p class="hint">${rule.file ?? ''} (read-only; edit the file and the rule reloads)</p>
      <textarea class="mono source" aria-label="Source" readonly rows=${Math.min(30, (rule.source ?? '').split('\n').length + 1)} value=${rule.source ?? ''}></textarea>
      <h2>Last errors</h2>
      <${LastErrors} errors=${rule.lastErrors ?? []} />
    ` : null}`
}

function LastErrors ({ errors }) {
  if (errors.length === 0) return html`<p class="empty">None.</p>`
  return html`
    <ol class="errors">
      ${[...errors].reverse().map(e => {
        const input = e.input
        const shown = input ? formatPayload(input.payload, input.encoding) : null
        return html`
          <li key=${e.at + (e.topic ?? e.file)}>
            <div><time>${dateTime(e.at)}</time> ${e.topic !== undefined ? html`on <code>${e.topic}</code>` : html`loading <code>${e.file}</code>`}</div>
            <pre class="error">${e.error}</pre>
            ${shown ? html`<div class="input">Input: <pre class=${'msg ' + shown.kind}>${shown.text}</pre></div>` : null}
          </li>`
      })}
    </ol>`
}

function TestForm ({ name, topics }) {
  const [topic, setTopic] = useState(() => topics.find(t => !/[+#]/.test(t)) ?? (topics[0] ?? '').replace(/#$/, 'test').replaceAll('+', 'x'))
  const [payload, setPayload] = useState('')
  const { submit, busy, result } = useSubmit(async () => {
    const value = await post('/api/rules/' + encodeURIComponent(name) + '/test', { topic, payload })
    return value?.error ? { error: value.error.message ?? String(value.error) } : { outputs: value?.outputs ?? [] }
  }, err => ({ error: err.message }))

  return html`
    <section class="card form" aria-labelledby="test-heading">
      <h2 id="test-heading">Test</h2>
      <form onSubmit=${submit}>
        <label for="test-topic">Topic</label>
        <input id="test-topic" class="mono" required value=${topic} onInput=${e => setTopic(e.target.value)} spellcheck="false" />
        <label for="test-payload">Payload</label>
        <textarea id="test-payload" class="mono" rows="6" value=${payload} onInput=${e => setPayload(e.target.value)} spellcheck="false"></textarea>
        <div><button type="submit" disabled=${busy}>Run test</button></div>
      </form>
      ${result?.error !== undefined ? html`<div role="alert" class="error"><strong>Error:</strong> <pre>${result.error}</pre></div>` : null}
      ${result?.outputs ? html`
        <div role="status">
          <h3>${result.outputs.length === 0 ? 'No outputs (the rule dropped the message)' : `Outputs (${result.outputs.length})`}</h3>
          ${result.outputs.length > 0 ? html`
            <table aria-label="Test outputs">
              <thead><tr><th scope="col">Topic</th><th scope="col">Message</th><th scope="col">QoS</th><th scope="col">Retain</th></tr></thead>
              <tbody>${result.outputs.map((o, i) => {
                const shown = o.payloadHex !== undefined ? { kind: 'hex', text: o.payloadHex.replace(/(..)(?=.)/g, '$1 ') } : formatPayload(o.payload, o.encoding)
                return html`<tr key=${i}><td class="topic">${o.topic}</td><td class=${'msg ' + shown.kind}><pre>${shown.text}</pre></td><td class="num">${o.qos}</td><td>${o.retain ? 'retained' : ''}</td></tr>`
              })}</tbody>
            </table>` : null}
        </div>` : null}
    </section>`
}
