/*
 * Small HTTP pieces the admin listener's files share: JSON answers, JSON
 * bodies (bounded, and only as application/json: see csrf in auth.ts), and
 * payloads as text or base64.
 */
import { isUtf8 } from 'node:buffer'
import type http from 'node:http'

/** An answer other than 2xx, thrown by a handler and written by the router. */
export class HttpError extends Error {
  readonly status: number
  readonly headers: Record<string, string>
  readonly extra: Record<string, unknown>

  constructor (status: number, message: string, options: { headers?: Record<string, string>, extra?: Record<string, unknown> } = {}) {
    super(message)
    this.status = status
    this.headers = options.headers ?? {}
    this.extra = options.extra ?? {}
  }
}

const NO_STORE = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }

export function sendJson (res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value, null, 2) + '\n'
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...NO_STORE, ...headers })
  res.end(body)
}

export function sendError (res: http.ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: err.message, ...err.extra }, err.headers)
}

/** True for a request whose Content-Type is application/json (parameters allowed). */
export function isJson (req: http.IncomingMessage): boolean {
  const type = req.headers['content-type']
  return typeof type === 'string' && type.split(';')[0]!.trim().toLowerCase() === 'application/json'
}

/** The JSON body: 415 unless application/json, 413 over `limit` bytes, 400 when not JSON. An empty body is `{}`. */
export async function readJson (req: http.IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) {
      req.resume()
      throw new HttpError(413, `the body exceeds ${limit} bytes`)
    }
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  if (text.trim() === '') return {}
  if (!isJson(req)) throw new HttpError(415, 'send the body as JSON, with Content-Type: application/json')
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new HttpError(400, `the body is not valid JSON: ${(err as Error).message}`)
  }
}

export type Encoding = 'utf8' | 'base64'

/** A payload for JSON: as text when it is valid UTF-8, else base64. */
export function encodePayload (payload: Buffer): { payload: string, encoding: Encoding } {
  return isUtf8(payload) ? { payload: payload.toString('utf8'), encoding: 'utf8' } : { payload: payload.toString('base64'), encoding: 'base64' }
}

/** A payload from JSON: `encoding` 'utf8' (the default) or 'base64'; 400 on anything else. */
export function decodePayload (payload: unknown, encoding: unknown): Buffer {
  if (typeof payload !== 'string') throw new HttpError(400, `payload must be a string (text, or base64 with "encoding": "base64"); got ${payload === null ? 'null' : typeof payload}`)
  if (encoding === undefined || encoding === 'utf8') return Buffer.from(payload, 'utf8')
  if (encoding !== 'base64') throw new HttpError(400, `encoding must be "utf8" or "base64"; got ${JSON.stringify(encoding)}`)
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(payload) || payload.length % 4 !== 0) throw new HttpError(400, 'payload is not valid base64 (encoding "base64")')
  return Buffer.from(payload, 'base64')
}

/** Decodes one path segment (`/api/retained/<topic>`); 400 when it is not valid percent-encoding. */
export function pathSegment (raw: string, what: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw new HttpError(400, `${what}: invalid percent-encoding in ${JSON.stringify(raw)}`)
  }
}
