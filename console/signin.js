/* The sign-in form, shown while /api/session answers 401. */
import { html, useState, useSubmit } from './lib.js'
import { post, setSession } from './api.js'

export function SignIn ({ onSignedIn }) {
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const { submit, busy, result: error } = useSubmit(async () => {
    const session = await post('/api/login', { username, password })
    setSession(session)
    onSignedIn(session)
    return null
  }, err => {
    setPassword('')
    return err.status === 401
      ? 'Wrong username or password.'
      : err.status === 429 ? 'Too many failed attempts: wait a moment and try again.' : err.message
  })

  return html`
    <main class="center">
      <form class="card signin" onSubmit=${submit}>
        <h1>Switchyard</h1>
        <label for="signin-username">Username</label>
        <input id="signin-username" name="username" autocomplete="username" required value=${username} onInput=${e => setUsername(e.target.value)} />
        <label for="signin-password">Password</label>
        <input id="signin-password" name="password" type="password" autocomplete="current-password" required value=${password} onInput=${e => setPassword(e.target.value)} />
        ${error ? html`<p role="alert" class="error">${error}</p>` : null}
        <button type="submit" disabled=${busy}>Sign in</button>
      </form>
    </main>`
}
