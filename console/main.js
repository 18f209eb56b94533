/*
 * The Switchyard console: a single page, routed by the URL's hash, over the
 * admin API. Pages are in their own modules; this one holds the session and
 * the navigation.
 */
import { html, render, useState, useEffect } from './lib.js'
import { get, post, setSession, whenUnauthorized } from './api.js'
import { SignIn } from './signin.js'
import { Overview } from './overview.js'
import { Live } from './live.js'
import { Publish } from './publish.js'
import { Retained } from './retained.js'
import { Rules, RulePage } from './rules.js'
import { Clients } from './clients.js'

const PAGES = [
  { path: 'overview', title: 'Overview', view: Overview },
  { path: 'live', title: 'Live', view: Live },
  { path: 'publish', title: 'Publish', view: Publish },
  { path: 'retained', title: 'Retained', view: Retained },
  { path: 'rules', title: 'Rules', view: Rules },
  { path: 'clients', title: 'Clients', view: Clients }
]

/** '#/rules/my%20rule' → ['rules', 'my rule'] */
function route () {
  const [page = 'overview', ...rest] = location.hash.replace(/^#\/?/, '').split('/')
  return { page: page || 'overview', arg: rest.length ? decodeURIComponent(rest.join('/')) : undefined }
}

function App () {
  // undefined: asking the server; null: signed out; an object: signed in (or no login needed)
  const [session, setState] = useState(undefined)
  const [problem, setProblem] = useState('')
  const [where, setWhere] = useState(route())

  const adopt = value => { setSession(value); setState(value) }
  useEffect(() => {
    whenUnauthorized(() => adopt(null))
    get('/api/session').then(adopt, err => {
      if (err.status === 401) adopt(null)
      else setProblem(err.message)
    })
    const onHash = () => setWhere(route())
    addEventListener('hashchange', onHash)
    return () => removeEventListener('hashchange', onHash)
  }, [])

  useEffect(() => {
    const page = PAGES.find(p => p.path === where.page)
    document.title = `${page ? page.title : 'Not found'} · Switchyard`
  }, [where])

  if (problem) return html`<main class="center"><p role="alert" class="error">${problem}</p></main>`
  if (session === undefined) return html`<main class="center"><p>Loading…</p></main>`
  if (session === null) return html`<${SignIn} onSignedIn=${adopt} />`

  const signOut = async () => {
    try { await post('/api/logout') } catch {}
    adopt(null)
  }
  const page = PAGES.find(p => p.path === where.page)
  let body
  if (where.page === 'rules' && where.arg !== undefined) body = html`<${RulePage} key=${where.arg} name=${where.arg} />`
  else if (page) body = html`<${page.view} />`
  else body = html`<h1>Not found</h1><p>There is no page “${where.page}”. <a href="#/overview">Overview</a></p>`

  return html`
    <header class="top">
      <span class="brand">Switchyard</span>
      <nav aria-label="Main">
        <ul>
          ${PAGES.map(p => html`<li key=${p.path}><a href=${'#/' + p.path} aria-current=${p.path === where.page ? 'page' : undefined}>${p.title}</a></li>`)}
        </ul>
      </nav>
      <span class="user">
        ${session.authRequired !== false && session.user ? html`${session.user} <button type="button" class="link" onClick=${signOut}>Sign out</button>` : null}
      </span>
    </header>
    <main>${body}</main>`
}

render(html`<${App} />`, document.getElementById('app'))
