/*
 * Issue 13: the "cluster" section. Errors name the key and the fix; the
 * Redis credentials (in the URL, or the password from the environment) and
 * TLS (rediss://) work against real Redis servers.
 */
import os from 'node:os'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { ConfigError, createBroker, parseConfig, SwitchyardError } from '../../src/index.js'
import { testCerts, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startNode, startRedis, useRedis } from '../helpers/redis.js'

const redis = useRedis()

function problems (input: object): readonly string[] {
  try {
    parseConfig(input)
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

describe('cluster config', () => {
  test('defaults: the local Redis, nodeId <hostname>-<first listener port>, heartbeat 5 s, one worker, persistence on Redis', () => {
    const config = parseConfig({ listeners: [{ type: 'tcp', port: 1884 }], cluster: {} })
    expect(config.cluster).toEqual({ redis: 'redis://127.0.0.1:6379/0', nodeId: `${os.hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-1884`, heartbeatMs: 5000, workers: 1 })
    expect(config.persistence).toEqual({ type: 'redis' })
    expect(Object.isFrozen(config.cluster)).toBe(true)
    expect(parseConfig({ cluster: {}, persistence: { type: 'redis' } }).persistence).toEqual({ type: 'redis' })
    // off by default; the single-node default is unchanged
    expect(parseConfig({}).cluster).toBeUndefined()
    expect(parseConfig({}).persistence.type).toBe('level')
  })

  test('persistence other than Redis with "cluster" is an error that says why', () => {
    expect(problems({ cluster: {}, persistence: { type: 'level' } })).toEqual([
      'persistence.type: "level" cannot be used with "cluster": every node must see the same sessions, offline queues and retained messages, and they live in the cluster\'s Redis; remove "persistence", or set it to { "type": "redis" }'
    ])
    expect(problems({ cluster: {}, persistence: { type: 'memory' } })[0]).toMatch(/^persistence\.type: "memory" cannot be used with "cluster"/)
    expect(problems({ persistence: { type: 'redis' } })).toEqual([
      'persistence.type: "redis" needs "cluster", which names the Redis server and this node; add "cluster": { "redis": "redis://127.0.0.1:6379/0" }, or use { "type": "level" } for a single broker'
    ])
  })

  test('nodeId: no ":" (Redis keys are split on it), and a topic level', () => {
    expect(problems({ cluster: { nodeId: 'a:b' } })).toEqual([
      'cluster.nodeId: "a:b" must not contain \':\' (Redis keys are split on it); use letters, digits, \'.\', \'_\' and \'-\''
    ])
    for (const bad of ['a/b', 'a+', '#', ' a', '', 'x'.repeat(65)]) {
      expect(problems({ cluster: { nodeId: bad } })[0]).toMatch(/^cluster\.nodeId: .* must be 1 to 64 letters/)
    }
    expect(parseConfig({ cluster: { nodeId: 'node-a.eu_1' } }).cluster!.nodeId).toBe('node-a.eu_1')
  })

  test('redis: a redis:// or rediss:// URL, a database number, the password in one place; never echoed', () => {
    expect(problems({ cluster: { redis: 'http://x' } })).toEqual(['cluster.redis: "http://x" must start with redis:// or rediss:// (TLS)'])
    expect(problems({ cluster: { redis: 'not a url' } })[0]).toMatch(/^cluster\.redis: "not a url" is not a URL; write redis:\/\/\[user:password@\]host/)
    expect(problems({ cluster: { redis: 'redis://h/zero' } })).toEqual(['cluster.redis: "redis://h/zero": the path must be a database number (e.g. /0)'])
    expect(problems({ cluster: { redis: 'redis://h?db=1' } })[0]).toMatch(/query parameters and fragments are not supported/)
    const both = problems({ cluster: { redis: 'redis://u:secret@h:6379/0', passwordEnv: 'REDIS_PASSWORD' } })
    expect(both).toEqual(['cluster.passwordEnv: the password is also in cluster.redis; give it in one place (remove it from the URL to keep it out of the config file)'])
    expect(problems({ cluster: { redis: 'ftp://u:secret@h' } }).join('\n')).not.toContain('secret')
    expect(problems({ cluster: { passwordEnv: 'my password' } })[0]).toMatch(/^cluster\.passwordEnv: "my password" is not an environment variable name/)
    expect(problems({ cluster: { ca: 'ca.pem' } })).toEqual([
      'cluster.ca: only used with TLS; write cluster.redis as rediss://..., or remove "ca"',
      `cluster.ca: file not found: ca.pem (resolved to ${path.resolve('ca.pem')}); give the PEM file of the CA that signed the Redis server's certificate`
    ])
    expect(problems({ cluster: { heartbeatMs: 10, workers: 0 } })).toEqual(['cluster.heartbeatMs: must be >= 100; got 10', 'cluster.workers: must be >= 1; got 0'])
    expect(problems({ cluster: { redis: 'redis://h', extra: 1 } })).toEqual(['cluster.extra: unknown key; remove it or check its spelling in docs/configuration.md'])
    // workers > 1 only under "cluster" (test/integration/cluster-workers.test.ts runs them)
    expect(parseConfig({ cluster: { workers: 2, nodeId: 'box' } }).cluster).toMatchObject({ workers: 2, nodeId: 'box' })
    expect(problems({ cluster: { workers: 12, nodeId: 'n'.repeat(62) } })[0]).toMatch(/^cluster\.nodeId: "n+" is too long for 12 workers: each worker is <nodeId>-w<i>/)
    expect(problems({ workers: 2 })[0]).toMatch(/^workers: not a top-level key; several worker processes need "cluster".*LevelDB cannot be shared between processes/)
  })

  test('a problem in "cluster" is reported with the others, all at once', () => {
    expect(problems({ cluster: { nodeId: 'a:b' }, persistence: { type: 'level' }, limits: { maxPacketSize: 1 } })).toHaveLength(3)
  })
})

describe('cluster: connecting to Redis', () => {
  test('an unreachable Redis fails the start with ERR_CLUSTER_UNAVAILABLE, naming cluster.redis without its password', async () => {
    const closed = await startRedis()
    const url = `redis://:hunter2@127.0.0.1:${closed.port}/0`
    await closed.stop()
    const err = await createBroker({ listeners: [{ type: 'tcp', port: 0 }], log: { level: 'silent' }, rules: { dir: null }, cluster: { redis: url, nodeId: 'lonely', heartbeatMs: 500 } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SwitchyardError)
    expect((err as SwitchyardError).code).toBe('ERR_CLUSTER_UNAVAILABLE')
    expect((err as Error).message).toMatch(/^cluster\.redis: cannot connect to redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0/)
    expect((err as Error).message).not.toContain('hunter2')
  })

  test('passwordEnv: the password comes from options.env; a missing variable is a config error naming it', async () => {
    const locked = await startRedis({ args: ['--requirepass', 's3cr:t@/%'] })
    try {
      const cluster = { redis: locked.url, nodeId: 'env-node', passwordEnv: 'SY_REDIS_PASSWORD' }
      const missing = await createBroker({ listeners: [{ type: 'tcp', port: 0 }], log: { level: 'silent' }, rules: { dir: null }, cluster }, { env: {} }).catch((e: unknown) => e)
      expect(missing).toBeInstanceOf(ConfigError)
      expect((missing as ConfigError).problems).toEqual(['cluster.passwordEnv: the environment variable SY_REDIS_PASSWORD is not set; set it to the Redis password'])
      const node = await createBroker({ listeners: [{ type: 'tcp', port: 0 }], log: { level: 'silent' }, rules: { dir: null }, cluster }, { env: { SY_REDIS_PASSWORD: 's3cr:t@/%' } })
      try {
        const c = await connect(urlFor(node), { clientId: 'authed' })
        await c.subscribeAsync('p/#', { qos: 1 })
        await c.publishAsync('p/1', 'ok', { qos: 1 })
        expect((await inbox(c).waitFor(1)).map(m => m.payload)).toEqual(['ok'])
        await c.endAsync()
      } finally {
        await node.close()
      }
    } finally {
      await locked.stop()
    }
  })

  test('health: the store is probed in Redis, and the node\'s cluster parts are reported', async () => {
    const node = await startNode(redis.url, 'healthy')
    const health = await node.health()
    // the order of the connections is the order they connected in
    const redisHealth = health.cluster?.redis as { connections: Array<{ name: string }> } | undefined
    redisHealth?.connections.sort((x, y) => x.name.localeCompare(y.name))
    expect(health).toEqual({
      ok: true,
      listeners: [{ type: 'tcp', port: node.listeners[0]!.port, up: true }],
      persistence: { ok: true },
      cluster: {
        nodeId: 'healthy',
        ok: true,
        errors: [],
        // readiness.ts: every Redis connection the node depends on (src/cluster/node.ts)
        redis: {
          ok: true,
          outages: 0,
          connections: ['cluster', 'emitter-pub', 'emitter-sub', 'shared', 'shared-sub', 'store'].map(name => ({ name, status: 'ready', ok: true }))
        }
      }
    })
  })

  test('user:password@ in the URL (a Redis ACL user)', async () => {
    await redis.server.admin.call('ACL', 'SETUSER', 'switchyard', 'on', '>pw', '~*', '&*', '+@all')
    const url = redis.url.replace('redis://', 'redis://switchyard:pw@')
    const node = await startNode(url, 'acl-node')
    const c = await connect(urlFor(node), { clientId: 'acl', clean: false })
    await c.subscribeAsync('acl/#', { qos: 1 })
    await c.publishAsync('acl/1', 'ok', { qos: 1 })
    expect((await inbox(c).waitFor(1)).map(m => m.payload)).toEqual(['ok'])
    expect(await redis.server.admin.exists('client:acl')).toBe(1)
  })

  test('rediss:// with cluster.ca: messages cross nodes over TLS', async () => {
    const certs = testCerts()
    const secure = await startRedis({ tls: { cert: certs.cert, key: certs.key, ca: certs.ca } })
    try {
      const a = await startNode(secure.tlsUrl!, 'tls-a', {}, { ca: certs.ca })
      const b = await startNode(secure.tlsUrl!, 'tls-b', {}, { ca: certs.ca })
      const sub = await connect(urlFor(b), { clientId: 'tls-sub' })
      await sub.subscribeAsync('tls/#', { qos: 1 })
      const pub = await connect(urlFor(a), { clientId: 'tls-pub' })
      await pub.publishAsync('tls/1', 'sealed', { qos: 1 })
      expect((await inbox(sub).waitFor(1)).map(m => m.payload)).toEqual(['sealed'])
      await Promise.all([sub.endAsync(), pub.endAsync()])
      await Promise.all([a.close(), b.close()])
    } finally {
      await secure.stop()
    }
  })
})
