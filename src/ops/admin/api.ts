/*
 * The admin API's operations (docs/operations.md#http-api): each handler
 * takes a checked call (the caller is known, CSRF checked: router.ts) and
 * answers JSON. What they act on comes through AdminSource (admin.ts), which
 * server.ts fills from the broker.
 */
import type http from 'node:http'
import { SwitchyardError } from '../../errors.js'
import { filterProblem, topicNameProblem } from '../../topics.js'
import type { AdminSource } from '../admin.js'
import type { History } from '../history.js'
import type { Caller } from './auth.js'
import { decodePayload, encodePayload, HttpError, pathSegment, readJson, sendJson } from './http.js'
import type { RuleTestBench } from './rule-test.js'
import type { StreamHub } from './stream.js'

/** At most this many retained messages in one answer of GET /api/retained. */
export const RETAINED_LIMIT = 1000

export interface ApiContext {
  source: AdminSource
  history: History
  streams: StreamHub
  bench: RuleTestBench
  /** Bytes a JSON body may have: a payload of limits.maxPacketSize in base64, and room around it. */
  bodyLimit: number
}

export interface Call {
  req: http.IncomingMessage
  res: http.ServerResponse
  caller: Caller
  url: URL
  /** The route's captured path segment, still percent-encoded. */
  param?: string
}

export const api = {
  async publish (ctx: ApiContext, { req, res, caller }: Call): Promise<void> {
    const body = object(await readJson(req, ctx.bodyLimit))
    const payload = decodePayload(body.payload, body.encoding)
    if (body.qos !== undefined && body.qos !== 0 && body.qos !== 1 && body.qos !== 2) throw new HttpError(400, `qos must be 0, 1 or 2; got ${JSON.stringify(body.qos)}`)
    if (body.retain !== undefined && typeof body.retain !== 'boolean') throw new HttpError(400, `retain must be true or false; got ${JSON.stringify(body.retain)}`)
    await publish(ctx, caller, { topic: body.topic as string, payload, qos: (body.qos ?? 0) as 0 | 1 | 2, retain: body.retain === true })
    sendJson(res, 200, { ok: true })
  },

  async retained (ctx: ApiContext, { res, url }: Call): Promise<void> {
    const filter = url.searchParams.get('filter') ?? '#'
    const problem = filterProblem(filter)
    if (problem !== undefined) throw new HttpError(400, `filter ${JSON.stringify(filter)}: the filter ${problem}`)
    const found = await ctx.source.retained(filter, RETAINED_LIMIT + 1)
    const messages = found.slice(0, RETAINED_LIMIT).map(m => ({ topic: m.topic, ...encodePayload(m.payload), qos: m.qos }))
    sendJson(res, 200, { messages, truncated: found.length > RETAINED_LIMIT })
  },

  async clearRetained (ctx: ApiContext, { res, caller, param }: Call): Promise<void> {
    const topic = pathSegment(param!, 'topic')
    // An empty retained message clears the topic's [MQTT-3.3.1-10], on every node of a cluster.
    await publish(ctx, caller, { topic, payload: Buffer.alloc(0), qos: 0, retain: true })
    sendJson(res, 200, { ok: true })
  },

  async disconnect (ctx: ApiContext, { res, param }: Call): Promise<void> {
    const clientId = pathSegment(param!, 'client id')
    if (!ctx.source.disconnect(clientId)) throw new HttpError(404, `no client ${JSON.stringify(clientId)} is connected to this broker`)
    sendJson(res, 200, { ok: true })
  },

  async rule (ctx: ApiContext, { res, param }: Call): Promise<void> {
    const rule = findRule(ctx, param!)
    sendJson(res, 200, {
      ...rule,
      lastErrors: rule.lastErrors.map(e => {
        if (e.input === undefined) return e
        const { payload, ...input } = e.input
        return { ...e, input: { ...input, ...encodePayload(payload) } }
      })
    })
  },

  async testRule (ctx: ApiContext, { req, res, param }: Call): Promise<void> {
    const rule = findRule(ctx, param!)
    const body = object(await readJson(req, ctx.bodyLimit))
    if (typeof body.topic !== 'string' || body.topic === '') throw new HttpError(400, 'topic must be a non-empty string: the sample message\'s topic')
    const payload = decodePayload(body.payload ?? '', body.encoding)
    if (body.qos !== undefined && body.qos !== 0 && body.qos !== 1 && body.qos !== 2) throw new HttpError(400, `qos must be 0, 1 or 2; got ${JSON.stringify(body.qos)}`)
    const outcome = await ctx.bench.run(rule.name, rule.source, {
      topic: body.topic,
      payloadHex: payload.toString('hex'),
      ...(body.qos === undefined ? {} : { qos: body.qos as 0 | 1 | 2 }),
      ...(typeof body.retain === 'boolean' ? { retain: body.retain } : {}),
      ...(typeof body.clientId === 'string' ? { clientId: body.clientId } : {}),
      ...(typeof body.username === 'string' ? { username: body.username } : {})
    })
    sendJson(res, 200, outcome)
  },

  async history (ctx: ApiContext, { res }: Call): Promise<void> {
    sendJson(res, 200, ctx.history.view())
  },

  async stream (ctx: ApiContext, { req, res, url, caller }: Call): Promise<void> {
    const filter = url.searchParams.get('filter') ?? '#'
    try {
      ctx.streams.open(req, res, filter, (f, handler) => ctx.source.subscribe(f, handler), caller.session)
    } catch (err) {
      if (err instanceof SwitchyardError && err.code === 'ERR_INVALID_FILTER') throw new HttpError(400, err.message)
      throw err
    }
  }
}

/** Publishes for the caller: origin 'api', with the administrator as its username; a bad input is a 400 with the broker's message. */
async function publish (ctx: ApiContext, caller: Caller, message: { topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean }): Promise<void> {
  const problem = topicNameProblem(message.topic)
  if (problem !== undefined) throw new HttpError(400, `topic ${JSON.stringify(message.topic)}: the topic ${problem}`)
  try {
    await ctx.source.publish(message, caller.user)
  } catch (err) {
    if (err instanceof SwitchyardError && err.code.startsWith('ERR_INVALID_')) throw new HttpError(400, err.message)
    if (err instanceof SwitchyardError && err.code === 'ERR_CLOSED') throw new HttpError(503, 'the broker is closing')
    throw err
  }
}

function findRule (ctx: ApiContext, param: string): NonNullable<ReturnType<AdminSource['rule']>> {
  const name = pathSegment(param, 'rule name')
  const rule = ctx.source.rule(name)
  if (rule === undefined) throw new HttpError(404, `no rule named ${JSON.stringify(name)} (GET /api/rules lists them)`)
  return rule
}

function object (body: unknown): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'the body must be a JSON object')
  return body as Record<string, unknown>
}
