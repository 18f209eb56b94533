/*
 * The admin API as the console calls it (docs/operations.md#http-api).
 * Every request says X-Requested-With, so a 401 never brings up the browser's
 * own Basic-auth dialog; every request that changes something carries the
 * session's CSRF token.
 */
let csrfToken = ''
let onUnauthorized = () => {}

export class ApiError extends Error {
  constructor (status, message, body) {
    super(message)
    this.status = status
    /** The answer's JSON, when it had one (a cluster's 503 still lists this node's clients). */
    this.body = body
  }
}

export function setSession (session) { csrfToken = session?.csrfToken ?? '' }
export function whenUnauthorized (fn) { onUnauthorized = fn }

export async function api (method, path, body) {
  const headers = { 'x-requested-with': 'switchyard-console', accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (method !== 'GET' && method !== 'HEAD') headers['x-csrf-token'] = csrfToken
  let res
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' })
  } catch (err) {
    throw new ApiError(0, `the admin listener cannot be reached (${err.message})`)
  }
  const text = await res.text()
  let value = null
  try { value = text ? JSON.parse(text) : null } catch { value = text }
  if (!res.ok) {
    const message = (value && typeof value === 'object' && (value.error?.message ?? value.error ?? value.message)) || `${res.status} ${res.statusText}`
    // A login that fails is the sign-in form's business; any other 401 means the session is gone.
    if (res.status === 401 && path !== '/api/login') onUnauthorized()
    throw new ApiError(res.status, String(message), value)
  }
  return value
}

export const get = path => api('GET', path)
export const post = (path, body = {}) => api('POST', path, body)
export const del = path => api('DELETE', path)
