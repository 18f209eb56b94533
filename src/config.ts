import { existsSync, readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { z } from 'zod'
import { bridgesSchema, checkBridges } from './bridges/config.js'
import { ConfigError } from './errors.js'

/*
 * One schema, one place for defaults. Every section is one entry of
 * `sections`; adding a section (auth, rules, admin...) is adding one entry.
 * parseConfig() validates once at the boundary, resolves relative paths
 * against the config file's directory, and deep-freezes the result: nothing
 * downstream re-checks it.
 */

const host = z.string().min(1).default('127.0.0.1')
const port = (fallback: number) => z.number().int().min(0).max(65535).default(fallback)
const wsPath = z.string().startsWith('/').default('/mqtt')

const tcpListener = z.strictObject({ type: z.literal('tcp'), host, port: port(1883) })
const wsListener = z.strictObject({ type: z.literal('ws'), host, port: port(8083), path: wsPath })
const tlsFields = {
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
  ca: z.string().min(1).optional(),
  requestCert: z.boolean().default(false),
  useIdentityAsUsername: z.boolean().default(false)
}
const tlsListener = z.strictObject({ type: z.literal('tls'), host, port: port(8883), ...tlsFields })
const wssListener = z.strictObject({ type: z.literal('wss'), host, port: port(8084), path: wsPath, ...tlsFields })

const listener = z.discriminatedUnion('type', [tcpListener, tlsListener, wssListener, wsListener])

const persistence = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('level'), path: z.string().min(1).default('data') }),
  z.strictObject({ type: z.literal('memory') }),
  // the cluster's Redis (cluster.redis); only with "cluster", and its default there
  z.strictObject({ type: z.literal('redis') })
])

// Issue 13: several nodes sharing one Redis (docs/cluster.md). nodeId's
// default, <hostname>-<first listener port>, is filled in by parseConfig.
const cluster = z.strictObject({
  redis: z.string().min(1).default('redis://127.0.0.1:6379/0'),
  // the name of an environment variable holding the Redis password (not the password)
  passwordEnv: z.string().min(1).optional(),
  // rediss:// only: the CA that signs the Redis server's certificate (else the system's)
  ca: z.string().min(1).optional(),
  nodeId: z.string().optional(),
  heartbeatMs: z.number().int().min(100).max(3_600_000).default(5000),
  workers: z.number().int().min(1).max(256).default(1)
})

const sections = {
  // prefault: the defaults are parsed, so each listener gets its own defaults
  listeners: z.array(listener).prefault([{ type: 'tcp' }, { type: 'tls' }, { type: 'wss' }]),
  persistence: persistence.prefault({ type: 'level' }),
  limits: z.strictObject({
    maxPacketSize: z.number().int().min(64).max(268435455).default(1048576),
    maxConnections: z.number().int().min(1).default(10000),
    maxQueuedMessages: z.number().int().min(0).default(1000),
    // bytes of UTF-8; 0: unlimited (65,535, the protocol's own bound)
    maxClientIdLength: z.number().int().min(0).max(65535).default(256)
  }).prefault({}),
  // MQTT 5 (docs/configuration.md#mqtt): what the broker grants v5 clients, advertised in CONNACK.
  mqtt: z.strictObject({
    // seconds; 0: no cap (a client may ask for 0xFFFFFFFF, never). Caps what a v5 client asks for.
    maxSessionExpiryInterval: z.number().int().min(0).max(0xFFFFFFFF).default(0),
    // 0: the broker accepts no topic aliases from clients
    topicAliasMaximum: z.number().int().min(0).max(65535).default(10),
    // unacknowledged QoS 1/2 PUBLISHes a v5 client may have in flight towards the broker
    receiveMaximum: z.number().int().min(1).max(65535).default(1000),
    // seconds; a v5 client asking for more, or for 0, is told this (Server Keep Alive). 0: none imposed. v5 only.
    maxKeepalive: z.number().int().min(0).max(65535).default(65535),
    sharedSubscriptions: z.boolean().default(true)
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info')
  }).prefault({}),
  auth: z.strictObject({
    passwordFile: z.string().min(1).optional(),
    aclFile: z.string().min(1).optional(),
    allowAnonymous: z.boolean().optional()
  }).prefault({}),
  admin: z.strictObject({
    host,
    port: port(9090),
    // issue 15: administrators, in the broker's password file format (`switchyard passwd`)
    passwordFile: z.string().min(1).optional(),
    // both: the admin listener speaks HTTPS
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    // a non-loopback admin listener without passwordFile starts only with this (checkAdmin)
    allowAnonymous: z.boolean().default(false)
  }).optional(),
  sys: z.strictObject({
    interval: z.number().int().min(0).max(86_400).default(10)
  }).prefault({}),
  rules: z.strictObject({
    // null: no rules directory, no file rules (broker.rules.add() still works)
    dir: z.string().min(1).nullable().default('rules'),
    timeoutMs: z.number().int().min(1).max(60_000).default(100),
    memoryLimitMb: z.number().int().min(8).max(4096).default(32),
    maxHops: z.number().int().min(1).max(64).default(4),
    // issue 16: an idle rule's isolate is released after this long (src/rules/isolate-pool.ts); null keeps it while the rule is loaded
    isolateIdleMs: z.number().int().min(0).max(86_400_000).nullable().default(300_000)
  }).prefault({}),
  cluster: cluster.optional(),
  // issue 14: connections to other brokers (docs/bridges.md); checked by checkBridges (src/bridges/config.ts)
  bridges: bridgesSchema
}

const schema = z.strictObject(sections)

/** The "mqtt" section's defaults, for a broker core created without a config (tests). */
export const MQTT_DEFAULTS: Readonly<z.output<typeof sections.mqtt>> = Object.freeze(sections.mqtt.parse({}))

type TlsFiles = { cert: string, key: string, generated: boolean }

export type TcpListenerConfig = z.output<typeof tcpListener>
export type WsListenerConfig = z.output<typeof wsListener>
export type TlsListenerConfig = Omit<z.output<typeof tlsListener>, 'cert' | 'key' | 'ca'> & TlsFiles & { ca?: string }
export type WssListenerConfig = Omit<z.output<typeof wssListener>, 'cert' | 'key' | 'ca'> & TlsFiles & { ca?: string }
export type ListenerConfig = TcpListenerConfig | TlsListenerConfig | WssListenerConfig | WsListenerConfig

/** The "cluster" section as validated: nodeId filled in (docs/cluster.md). */
export type ClusterConfig = Omit<z.output<typeof cluster>, 'nodeId'> & { nodeId: string }

/** The validated, path-resolved, frozen configuration. */
export type Config = Readonly<Omit<z.output<typeof schema>, 'listeners' | 'cluster'> & {
  listeners: readonly ListenerConfig[]
  /** Set: this broker is one node of a cluster on Redis, and persistence is { type: 'redis' }. */
  cluster?: ClusterConfig
  /** Directory that relative paths were resolved against. */
  baseDir: string
  /** Where a development CA and server certificate are generated when a TLS listener names none. */
  devCertDir: string
}>

/** What a user writes: the JSON file's shape, every key optional. */
export type ConfigInput = z.input<typeof schema>

export interface ParseOptions {
  /** Directory relative paths resolve against: the config file's directory. Default: process.cwd(). */
  baseDir?: string
  /** Named in error messages, usually the config file path. */
  source?: string
}

const validated = new WeakSet<object>()

/** True for a config that parseConfig() produced (and froze). */
export function isValidated (value: unknown): value is Config {
  return typeof value === 'object' && value !== null && validated.has(value)
}

export function parseConfig (input: unknown, options: ParseOptions = {}): Config {
  const baseDir = path.resolve(options.baseDir ?? '.')
  const devCertDir = path.resolve(baseDir, 'certs')
  const result = schema.safeParse(input ?? {}, { reportInput: true })
  if (!result.success) {
    // Run the file and cross-field checks too, on every part that is valid on
    // its own, so one `switchyard check` shows every problem at once.
    const raw = (typeof input === 'object' && input !== null ? input : {}) as { listeners?: unknown, auth?: unknown, cluster?: unknown, persistence?: unknown, admin?: unknown }
    const rawListeners = Array.isArray(raw.listeners) ? raw.listeners : []
    const listeners = rawListeners.map(l => listener.safeParse(l)).map(r => r.success ? r.data : undefined)
    const { listeners: resolved, problems } = resolveListeners(listeners, baseDir, devCertDir)
    const auth = sections.auth.safeParse(raw.auth)
    if (auth.success) resolveAuth(auth.data, baseDir, problems)
    const rawAuth = (raw.auth ?? {}) as { allowAnonymous?: unknown, passwordFile?: unknown }
    problems.push(
      ...checkPorts(listeners),
      ...checkExposure(listeners, { allowAnonymous: rawAuth.allowAnonymous === true, passwordFile: typeof rawAuth.passwordFile === 'string' }),
      // Only with every listener known: an invalid one may be the one clients log in through.
      ...(auth.success && listeners.every(l => l !== undefined) ? checkLogin(resolved, auth.data) : []),
      ...checkClusterPersistence(raw))
    const clusterSection = cluster.safeParse(raw.cluster)
    if (clusterSection.success && clusterSection.data !== undefined) checkCluster(clusterSection.data, baseDir, problems)
    const bridgesSection = sections.bridges.safeParse((raw as { bridges?: unknown }).bridges)
    if (bridgesSection.success) checkBridges(bridgesSection.data, baseDir, problems, raw.cluster !== undefined)
    const adminSection = sections.admin.safeParse(raw.admin)
    if (adminSection.success && adminSection.data !== undefined) resolveAdmin(adminSection.data, baseDir, problems)
    throw new ConfigError([...result.error.issues.map(describeIssue), ...problems], options.source)
  }
  const parsed = result.data
  const { listeners, problems } = resolveListeners(parsed.listeners, baseDir, devCertDir)
  const auth = resolveAuth(parsed.auth, baseDir, problems)
  problems.push(
    ...checkPorts(listeners),
    ...checkExposure(parsed.listeners, { allowAnonymous: auth.allowAnonymous === true, passwordFile: auth.passwordFile !== undefined }),
    ...checkLogin(listeners, auth),
    ...checkClusterPersistence(input as { persistence?: unknown, cluster?: unknown }))
  const clusterConfig = parsed.cluster === undefined ? undefined : checkCluster(parsed.cluster, baseDir, problems, listeners)
  const bridges = checkBridges(parsed.bridges, baseDir, problems, clusterConfig !== undefined)
  const admin = parsed.admin === undefined ? undefined : resolveAdmin(parsed.admin, baseDir, problems)
  if (problems.length > 0) throw new ConfigError(problems, options.source)

  const persistence = clusterConfig !== undefined
    // absent or { type: 'redis' } (checkClusterPersistence): the cluster's Redis
    ? { type: 'redis' as const }
    : parsed.persistence.type === 'level'
      ? { ...parsed.persistence, path: path.resolve(baseDir, parsed.persistence.path) }
      : parsed.persistence
  const rules = { ...parsed.rules, dir: parsed.rules.dir === null ? null : path.resolve(baseDir, parsed.rules.dir) }
  const { cluster: _cluster, ...rest } = parsed
  const config = deepFreeze({ ...rest, listeners, persistence, rules, auth, bridges, ...(admin === undefined ? {} : { admin }), baseDir, devCertDir, ...(clusterConfig === undefined ? {} : { cluster: clusterConfig }) })
  validated.add(config)
  return config
}

/** A validated config as one worker of cluster.workers runs it (src/cli/workers.ts): the same, under its own node id. */
export function forWorker (config: Config, nodeId: string): Config {
  if (config.cluster === undefined) throw new TypeError('forWorker: the config has no "cluster"')
  const copy = deepFreeze({ ...config, cluster: { ...config.cluster, nodeId } })
  validated.add(copy)
  return copy
}

type ParsedListener = z.output<typeof listener>

/** Resolves TLS file paths; `undefined` entries (invalid listeners) keep their index for messages. */
function resolveListeners (parsed: ReadonlyArray<ParsedListener | undefined>, baseDir: string, devCertDir: string): { listeners: ListenerConfig[], problems: string[] } {
  const problems: string[] = []
  const resolve = (p: string) => path.resolve(baseDir, p)
  const listeners: ListenerConfig[] = []
  parsed.forEach((l, i) => {
    if (l === undefined) return
    if (l.type !== 'tls' && l.type !== 'wss') { listeners.push(l); return }
    const key = `listeners[${i}]`
    if ((l.cert === undefined) !== (l.key === undefined)) {
      problems.push(`${key}: "cert" and "key" go together; set both, or neither to use a generated development certificate`)
    }
    for (const field of ['cert', 'key'] as const) {
      const file = l[field]
      if (file !== undefined && !existsSync(resolve(file))) {
        problems.push(`${key}.${field}: file not found: ${file} (resolved to ${resolve(file)}); fix the path, or remove cert and key to use a generated development certificate`)
      }
    }
    if (l.ca !== undefined && !existsSync(resolve(l.ca))) {
      problems.push(`${key}.ca: file not found: ${l.ca} (resolved to ${resolve(l.ca)}); give the CA that signs client certificates`)
    }
    if (l.requestCert && l.ca === undefined) {
      problems.push(`${key}.requestCert: needs "ca", the CA that client certificates must be signed by`)
    }
    if (l.useIdentityAsUsername && !l.requestCert) {
      problems.push(`${key}.useIdentityAsUsername: needs "requestCert": true (and "ca"), so that every client presents a certificate`)
    }
    const generated = l.cert === undefined || l.key === undefined
    listeners.push({
      ...l,
      cert: generated ? path.join(devCertDir, 'server.crt') : resolve(l.cert!),
      key: generated ? path.join(devCertDir, 'server.key') : resolve(l.key!),
      ...(l.ca === undefined ? {} : { ca: resolve(l.ca) }),
      generated
    })
  })
  return { listeners, problems }
}

/**
 * Reads and validates a JSON config file. With no file, ./switchyard.json is
 * used when it exists, else the built-in defaults (with baseDir = cwd).
 * `cwd` defaults to the working directory (path.resolve() with no argument).
 */
export function loadConfig (file?: string, cwd = path.resolve()): Config {
  const chosen = file ?? (existsSync(path.join(cwd, 'switchyard.json')) ? 'switchyard.json' : undefined)
  if (chosen === undefined) return parseConfig({}, { baseDir: cwd })
  const full = path.resolve(cwd, chosen)
  let text: string
  try {
    text = readFileSync(full, 'utf8')
  } catch (err) {
    throw new ConfigError([`--config: cannot read ${full}: ${(err as Error).message}`])
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    const { line, column } = jsonErrorAt(text, (err as Error).message)
    throw new ConfigError([`${full}:${line}:${column}: not valid JSON: ${jsonReason((err as Error).message)}; fix the syntax (JSON allows no comments or trailing commas)`], full, { cause: err })
  }
  return parseConfig(json, { baseDir: path.dirname(full), source: full })
}

/**
 * Where JSON.parse failed, 1-based. Node 20 says "at position N", or nothing
 * at all for "Unexpected token"; newer Node says "(line L column C)".
 */
function jsonErrorAt (text: string, message: string): { line: number, column: number } {
  const at = /\(line (\d+) column (\d+)\)/.exec(message)
  if (at) return { line: Number(at[1]), column: Number(at[2]) }
  const offset = jsonErrorOffset(text.length, message) ?? firstBadOffset(text)
  const lines = text.slice(0, offset).split('\n')
  return { line: lines.length, column: lines[lines.length - 1]!.length + 1 }
}

function jsonErrorOffset (length: number, message: string): number | undefined {
  if (message.startsWith('Unexpected end of JSON input')) return length
  const at = / at position (\d+)/.exec(message)
  return at ? Number(at[1]) : undefined
}

// The shortest prefix that fails for another reason than ending early ends
// with the offending character.
function firstBadOffset (text: string): number {
  const fails = (n: number) => {
    try {
      JSON.parse(text.slice(0, n))
      return false
    } catch (err) {
      const offset = jsonErrorOffset(n, (err as Error).message)
      return offset === undefined || offset < n
    }
  }
  let lo = 0
  let hi = text.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (fails(mid)) hi = mid
    else lo = mid + 1
  }
  return Math.max(0, lo - 1)
}

function jsonReason (message: string): string {
  return message
    .replace(/ in JSON at position \d+.*$/s, '')
    .replace(/ \(line \d+ column \d+\)/, '')
    .replace(/, .* is not valid JSON$/s, '')
}

export function isLoopback (h: string): boolean {
  if (h === 'localhost') return true
  if (isIP(h) === 4) return h.startsWith('127.')
  return h === '::1' || h === '0:0:0:0:0:0:0:1'
}

type AuthInput = z.output<typeof sections.auth>

/**
 * With "cluster", sessions, queues and retained messages live in the
 * cluster's Redis, shared by every node: "persistence" must be absent or
 * { "type": "redis" }. { "type": "redis" } needs "cluster" (the Redis to use).
 */
function checkClusterPersistence (raw: { persistence?: unknown, cluster?: unknown } | null | undefined): string[] {
  const type = (raw?.persistence as { type?: unknown } | undefined)?.type
  const clustered = raw?.cluster !== undefined
  if (clustered && raw?.persistence !== undefined && type !== 'redis') {
    return [`persistence.type: ${JSON.stringify(type)} cannot be used with "cluster": every node must see the same sessions, offline queues and retained messages, and they live in the cluster's Redis; remove "persistence", or set it to { "type": "redis" }`]
  }
  if (!clustered && type === 'redis') {
    return ['persistence.type: "redis" needs "cluster", which names the Redis server and this node; add "cluster": { "redis": "redis://127.0.0.1:6379/0" }, or use { "type": "level" } for a single broker']
  }
  return []
}

// Redis keys built from the node and broker ids are split on ':', and the
// node id is a topic level ($SYS/switchyard/nodes/<nodeId>/...).
const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** The cluster section, checked, with its nodeId filled in and `ca` resolved. `listeners`: for the default nodeId. */
function checkCluster (c: z.output<typeof cluster>, baseDir: string, problems: string[], listeners?: readonly ListenerConfig[]): ClusterConfig {
  problems.push(...checkRedisUrl(c.redis, c.passwordEnv !== undefined))
  const ca = c.ca === undefined ? undefined : path.resolve(baseDir, c.ca)
  if (c.ca !== undefined) {
    if (!c.redis.startsWith('rediss://')) problems.push('cluster.ca: only used with TLS; write cluster.redis as rediss://..., or remove "ca"')
    if (!existsSync(ca!)) problems.push(`cluster.ca: file not found: ${c.ca} (resolved to ${ca}); give the PEM file of the CA that signed the Redis server's certificate`)
  }
  if (c.passwordEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(c.passwordEnv)) {
    problems.push(`cluster.passwordEnv: ${JSON.stringify(c.passwordEnv)} is not an environment variable name; give the variable's name (e.g. "REDIS_PASSWORD"), not the password`)
  }
  // workers > 1: `switchyard start` forks that many nodes (src/cli/workers.ts), named <nodeId>-w<i>.
  // Only here, under "cluster": without it each process would need the LevelDB directory, which one process locks.
  if (c.workers > 1 && c.nodeId !== undefined && c.nodeId.length + `-w${c.workers - 1}`.length > 64) {
    problems.push(`cluster.nodeId: ${JSON.stringify(c.nodeId)} is too long for ${c.workers} workers: each worker is <nodeId>-w<i>, at most 64 characters; shorten it`)
  }
  if (c.nodeId !== undefined) {
    if (c.nodeId.includes(':')) {
      problems.push(`cluster.nodeId: ${JSON.stringify(c.nodeId)} must not contain ':' (Redis keys are split on it); use letters, digits, '.', '_' and '-'`)
    } else if (!NODE_ID.test(c.nodeId)) {
      problems.push(`cluster.nodeId: ${JSON.stringify(c.nodeId)} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (it is a topic level in $SYS/switchyard/nodes/<nodeId>/)`)
    }
  }
  return { ...c, nodeId: c.nodeId ?? defaultNodeId(listeners ?? []), ...(ca === undefined ? {} : { ca }) }
}

/** <hostname>-<first listener port>: stable across restarts on one machine (docs/cluster.md). */
function defaultNodeId (listeners: readonly ListenerConfig[]): string {
  const host = os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 48) || 'node'
  const first = listeners[0]
  return first === undefined ? host : `${host}-${first.port}`
}

function checkRedisUrl (value: string, passwordFromEnv: boolean): string[] {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return [`cluster.redis: ${JSON.stringify(redactUrl(value))} is not a URL; write redis://[user:password@]host[:port][/db], or rediss:// for TLS`]
  }
  const problems: string[] = []
  const shown = JSON.stringify(redactUrl(value))
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    problems.push(`cluster.redis: ${shown} must start with redis:// or rediss:// (TLS)`)
  }
  if (url.hostname === '') problems.push(`cluster.redis: ${shown} names no host; write redis://host[:port][/db]`)
  if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d{1,5}$/.test(url.pathname)) {
    problems.push(`cluster.redis: ${shown}: the path must be a database number (e.g. /0)`)
  }
  if (url.search !== '' || url.hash !== '') {
    problems.push(`cluster.redis: ${shown}: query parameters and fragments are not supported; give only redis://[user:password@]host[:port][/db]`)
  }
  if (passwordFromEnv && url.password !== '') {
    problems.push('cluster.passwordEnv: the password is also in cluster.redis; give it in one place (remove it from the URL to keep it out of the config file)')
  }
  return problems
}

/** The URL with its password masked, for messages and logs. */
function redactUrl (value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@/]*@/i, '$1***@')
}

function resolveAuth (auth: AuthInput, baseDir: string, problems: string[]): AuthInput {
  const out: AuthInput = { ...auth }
  for (const field of ['passwordFile', 'aclFile'] as const) {
    const file = auth[field]
    if (file === undefined) continue
    const full = path.resolve(baseDir, file)
    if (!existsSync(full)) problems.push(`auth.${field}: file not found: ${file} (resolved to ${full})${field === 'passwordFile' ? '; create it with `switchyard passwd -c <file> <user>`' : ''}`)
    out[field] = full
  }
  return out
}

// Mosquitto 2 semantics: anonymous access is local-only unless explicitly
// allowed. A listener counts as authenticated when a password file is
// configured, or when it takes the username from client certificates.
function checkExposure (listeners: ReadonlyArray<ParsedListener | undefined>, auth: { allowAnonymous: boolean, passwordFile: boolean }): string[] {
  if (auth.allowAnonymous || auth.passwordFile) return []
  return listeners.flatMap((l, i) => l === undefined || isLoopback(l.host) || ('useIdentityAsUsername' in l && l.useIdentityAsUsername)
    ? []
    : [`listeners[${i}].host: "${l.host}" is not a loopback address and no authentication is configured; ` +
      'bind to 127.0.0.1, set "auth": { "passwordFile": ... }, or set "auth": { "allowAnonymous": true } to accept anonymous remote clients (see docs/security.md)'])
}

function checkLogin (listeners: readonly ListenerConfig[], auth: AuthInput): string[] {
  if (auth.allowAnonymous !== false || auth.passwordFile !== undefined) return []
  if (listeners.some(l => (l.type === 'tls' || l.type === 'wss') && l.useIdentityAsUsername)) return []
  return ['auth.allowAnonymous: false, but there is no passwordFile and no listener with useIdentityAsUsername: no client could connect; add "passwordFile"']
}

/**
 * The admin section (issue 15, docs/security.md#the-admin-listener): its
 * files resolved and checked; a non-loopback admin listener needs a
 * passwordFile, or says allowAnonymous, as the broker's listeners do.
 */
function resolveAdmin (admin: AdminInput, baseDir: string, problems: string[]): AdminInput {
  const out: AdminInput = { ...admin }
  for (const field of ['passwordFile', 'cert', 'key'] as const) {
    const file = admin[field]
    if (file === undefined) continue
    const full = path.resolve(baseDir, file)
    if (!existsSync(full)) {
      problems.push(`admin.${field}: file not found: ${file} (resolved to ${full})${field === 'passwordFile' ? '; create it with `switchyard passwd -c <file> <user>`' : '; fix the path, or remove cert and key to serve plain HTTP'}`)
    }
    out[field] = full
  }
  if ((admin.cert === undefined) !== (admin.key === undefined)) {
    problems.push('admin: "cert" and "key" go together; set both to serve the admin listener over HTTPS, or neither for HTTP')
  }
  if (admin.allowAnonymous && admin.passwordFile !== undefined) {
    problems.push('admin.allowAnonymous: true, but admin.passwordFile is set too; remove one: with a passwordFile every route but /healthz needs a login')
  }
  if (!isLoopback(admin.host) && admin.passwordFile === undefined && !admin.allowAnonymous) {
    problems.push(`admin.host: "${admin.host}" is not a loopback address and the admin listener has no login; ` +
      'bind it to 127.0.0.1, set "admin": { "passwordFile": ... } (make one with `switchyard passwd -c <file> <user>`), or set "admin": { "allowAnonymous": true } to expose it without login (see docs/security.md)')
  }
  return out
}

type AdminInput = NonNullable<z.output<typeof sections.admin>>

/** `undefined` entries (listeners invalid on their own) keep their index for messages. */
function checkPorts (listeners: ReadonlyArray<{ host: string, port: number } | undefined>): string[] {
  const seen = new Map<string, number>()
  const problems: string[] = []
  listeners.forEach((l, i) => {
    if (l === undefined || l.port === 0) return
    const id = `${l.host}:${l.port}`
    const first = seen.get(id)
    if (first !== undefined) problems.push(`listeners[${i}].port: ${id} is already used by listeners[${first}]; give each listener its own port`)
    else seen.set(id, i)
  })
  return problems
}

function describeIssue (issue: z.core.$ZodIssue): string {
  const key = formatPath(issue.path) || '(top level)'
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map(k => key === '(top level)' && k === 'hooks'
        // Functions cannot come from a JSON file, so they are not config: see docs/embedding.md.
        ? 'hooks: not a config key; pass hooks as an option: createBroker(config, { hooks })'
        : key === '(top level)' && k === 'workers'
          ? 'workers: not a top-level key; several worker processes need "cluster" ("cluster": { "workers": N }) and its Redis: without a cluster each process would need the LevelDB directory, and LevelDB cannot be shared between processes'
          : `${key === '(top level)' ? '' : key + '.'}${k}: unknown key; remove it or check its spelling in docs/configuration.md`).join('\n  ')
    case 'invalid_union':
      if ('options' in issue && Array.isArray(issue.options)) {
        return `${key}: must be one of ${issue.options.map(o => JSON.stringify(o)).join(', ')}`
      }
      return `${key}: ${issue.message}`
    case 'invalid_type':
      return `${key}: expected ${issue.expected}, got ${describeValue(issue.input)}`
    case 'invalid_value':
      return `${key}: must be one of ${issue.values.map(v => JSON.stringify(v)).join(', ')}; got ${describeValue(issue.input)}`
    case 'too_small':
      return `${key}: must be ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}; got ${describeValue(issue.input)}`
    case 'too_big':
      return `${key}: must be ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}; got ${describeValue(issue.input)}`
    default:
      return `${key}: ${issue.message}`
  }
}

function describeValue (v: unknown): string {
  if (v === undefined) return 'nothing (the key is required)'
  return JSON.stringify(v) ?? String(v)
}

function formatPath (p: readonly PropertyKey[]): string {
  return p.reduce<string>((acc, part) => typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part), '')
}

function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
