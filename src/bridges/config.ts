/*
 * The "bridges" section (docs/bridges.md): its schema, and the checks that
 * need more than one field or the file system. config.ts adds the schema to
 * its sections and calls checkBridges() once, at the boundary; nothing in
 * src/bridges/ checks a bridge's config again.
 */
import { existsSync } from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import { filterProblem, hasWildcard } from '../topics.js'

const topic = z.strictObject({
  // "" is allowed when a prefix holds the whole topic (Mosquitto's `topic "" out 1 a/b c/d`)
  pattern: z.string(),
  direction: z.enum(['in', 'out', 'both']).default('out'),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(0),
  localPrefix: z.string().default(''),
  remotePrefix: z.string().default('')
})

const bridge = z.strictObject({
  // a topic level of $SYS/broker/connection/<name>/state, and the out queue's key prefix
  name: z.string(),
  address: z.string().min(1),
  clientId: z.string().min(1).max(65535).optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  // the name of an environment variable holding the password (not the password)
  passwordEnv: z.string().min(1).optional(),
  ca: z.string().min(1).nullable().default(null),
  cert: z.string().min(1).nullable().default(null),
  key: z.string().min(1).nullable().default(null),
  cleanSession: z.boolean().default(false),
  keepalive: z.number().int().min(0).max(65535).default(60),
  // 5: No Local and Retain As Published on the remote subscriptions; 4: MQTT 3.1.1
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(5),
  topics: z.array(topic).min(1),
  reconnect: z.strictObject({
    minMs: z.number().int().min(10).max(3_600_000).default(1000),
    maxMs: z.number().int().min(10).max(3_600_000).default(60_000)
  }).prefault({}),
  queue: z.strictObject({
    maxMessages: z.number().int().min(1).max(100_000_000).default(100_000)
  }).prefault({})
})

export const bridgesSchema = z.array(bridge).default([])

export type BridgeConfig = z.output<typeof bridge>
export type BridgeTopic = z.output<typeof topic>

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const SCHEMES = ['mqtt:', 'mqtts:', 'ws:', 'wss:']

/**
 * Checks each bridge, pushing one `bridges[i].key: what; how to fix` line per
 * problem, and returns them with their files resolved against `baseDir` and
 * their clientId filled in. `_clustered`: a cluster node runs each bridge
 * while it holds the bridge's lease (docs/bridges.md#clusters); nothing more to check.
 */
export function checkBridges (bridges: readonly BridgeConfig[], baseDir: string, problems: string[], _clustered: boolean): BridgeConfig[] {
  const names = new Map<string, number>()
  return bridges.map((b, i) => {
    const key = `bridges[${i}]`
    if (!NAME.test(b.name)) {
      problems.push(`${key}.name: ${JSON.stringify(b.name)} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it is a topic level in $SYS/broker/connection/<name>/state)`)
    } else if (names.has(b.name)) {
      problems.push(`${key}.name: ${JSON.stringify(b.name)} is already the name of bridges[${names.get(b.name)}]; give each bridge its own name`)
    } else names.set(b.name, i)
    problems.push(...addressProblems(b.address, key))
    if (b.password !== undefined && b.passwordEnv !== undefined) {
      problems.push(`${key}.passwordEnv: the password is also in ${key}.password; give it in one place (passwordEnv keeps it out of the config file)`)
    }
    if (b.passwordEnv !== undefined && !ENV_NAME.test(b.passwordEnv)) {
      problems.push(`${key}.passwordEnv: ${JSON.stringify(b.passwordEnv)} is not an environment variable name; give the variable's name (e.g. "PLANT_PASSWORD"), not the password`)
    }
    if ((b.password !== undefined || b.passwordEnv !== undefined) && b.username === undefined) {
      problems.push(`${key}.username: a password needs a username (MQTT 3.1.1 [MQTT-3.1.2-22]); add "username"`)
    }
    if ((b.cert === null) !== (b.key === null)) problems.push(`${key}: "cert" and "key" go together (the client certificate and its key); set both, or neither`)
    const secure = b.address.startsWith('mqtts://') || b.address.startsWith('wss://')
    const files: Partial<Record<'ca' | 'cert' | 'key', string>> = {}
    for (const field of ['ca', 'cert', 'key'] as const) {
      const file = b[field]
      if (file === null) continue
      const full = path.resolve(baseDir, file)
      files[field] = full
      if (!secure) problems.push(`${key}.${field}: only used with TLS; write the address as mqtts:// or wss://, or remove "${field}"`)
      else if (!existsSync(full)) problems.push(`${key}.${field}: file not found: ${file} (resolved to ${full})${field === 'ca' ? '; give the PEM file of the CA that signed the remote broker\'s certificate' : ''}`)
    }
    if (b.reconnect.minMs > b.reconnect.maxMs) {
      problems.push(`${key}.reconnect.minMs: ${b.reconnect.minMs} is more than reconnect.maxMs ${b.reconnect.maxMs}; the backoff doubles from minMs up to maxMs`)
    }
    b.topics.forEach((t, j) => problems.push(...topicProblems(t, `${key}.topics[${j}]`)))
    return { ...b, clientId: b.clientId ?? `switchyard-${b.name}`, ca: files.ca ?? null, cert: files.cert ?? null, key: files.key ?? null }
  })
}

function addressProblems (address: string, key: string): string[] {
  let url: URL
  try {
    url = new URL(address)
  } catch {
    return [`${key}.address: ${JSON.stringify(address)} is not a URL; write mqtt://host:1883, mqtts://host:8883, ws://host/mqtt or wss://host/mqtt`]
  }
  const problems: string[] = []
  if (!SCHEMES.includes(url.protocol)) problems.push(`${key}.address: ${JSON.stringify(url.protocol.slice(0, -1))} is not a bridge scheme; use mqtt://, mqtts:// (TLS), ws:// or wss://`)
  if (url.hostname === '') problems.push(`${key}.address: ${JSON.stringify(address)} names no host`)
  if (url.username !== '' || url.password !== '') problems.push(`${key}.address: give the credentials in "username" and "password" (or "passwordEnv"), not in the URL`)
  return problems
}

function topicProblems (t: BridgeTopic, key: string): string[] {
  const problems: string[] = []
  for (const field of ['localPrefix', 'remotePrefix'] as const) {
    if (hasWildcard(t[field])) problems.push(`${key}.${field}: ${JSON.stringify(t[field])} must not contain wildcards (+ or #): it is prepended to the pattern`)
  }
  if (problems.length > 0) return problems
  for (const [side, prefix] of [['local', t.localPrefix], ['remote', t.remotePrefix]] as const) {
    const problem = filterProblem(prefix + t.pattern)
    if (problem !== undefined) problems.push(`${key}.pattern: the ${side} filter ${JSON.stringify(prefix + t.pattern)} ${problem}; with an empty pattern, the prefix must be the whole topic`)
  }
  return problems
}
