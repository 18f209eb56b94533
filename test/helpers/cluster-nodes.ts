/*
 * Cluster nodes for the src/cluster/ tests: in this process (membership on a
 * connection of its own, left after the test), or in a child process
 * (helpers/cluster-node.mjs) that a test can kill -9. CLUSTER_TEST_LOG=debug
 * shows the in-process nodes' logs.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Redis } from 'ioredis'
import { pino, type Logger } from 'pino'
import { onTestFinished } from 'vitest'
import { connectRedis } from '../../src/cluster/redis.js'
import { join, type Membership, type NodeStats } from '../../src/cluster/membership.js'

const silent = pino({ level: process.env.CLUSTER_TEST_LOG ?? 'silent' })

export interface LocalNode {
  readonly redis: Redis
  readonly membership: Membership
  /** Every 'nodeDead' this node emitted, with performance.now() at the time. */
  readonly dead: Array<{ nodeId: string, incarnation: string, at: number }>
}

/** A node in this process; left, and its connection closed, after the test. */
export async function localNode (url: string, nodeId: string, heartbeatMs: number, options: { stats?: () => NodeStats, logger?: Logger } = {}): Promise<LocalNode> {
  const redis = await connectRedis(url, { heartbeatMs })
  let membership: Membership | undefined
  onTestFinished(async () => { await membership?.leave(); redis.disconnect() })
  membership = await join({ redis, nodeId, address: `${nodeId}.test:1883`, heartbeatMs, logger: options.logger ?? silent, ...(options.stats ? { stats: options.stats } : {}) })
  const dead: LocalNode['dead'] = []
  membership.on('nodeDead', (id, incarnation) => dead.push({ nodeId: id, incarnation, at: performance.now() }))
  return { redis, membership, dead }
}

/** Resolves with the first 'nodeDead' for `nodeId` (at performance.now()), now or later. */
export function deathOf (node: LocalNode, nodeId: string, timeoutMs = 10_000): Promise<{ incarnation: string, at: number }> {
  const seen = node.dead.find(d => d.nodeId === nodeId)
  if (seen) return Promise.resolve(seen)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { node.membership.off('nodeDead', on); reject(new Error(`no nodeDead for ${nodeId} within ${timeoutMs} ms`)) }, timeoutMs)
    const on = (id: string, incarnation: string): void => {
      if (id !== nodeId) return
      clearTimeout(timer)
      node.membership.off('nodeDead', on)
      resolve({ incarnation, at: performance.now() })
    }
    node.membership.on('nodeDead', on)
  })
}

export interface ChildNode {
  readonly child: ChildProcess
  readonly incarnation: string
  /** Resolves with the next line whose event is `event`. */
  next(event: string, timeoutMs?: number): Promise<Record<string, unknown>>
  /** Sends `signal` (default SIGKILL); resolves with performance.now() just before. */
  kill(signal?: NodeJS.Signals): Promise<number>
}

export interface ChildWill {
  clientId: string
  will: { topic: string, payload: string | { base64: string }, qos: 0 | 1 | 2, retain: boolean, properties?: Record<string, unknown>, sessionExpiryInterval?: number }
}

const SCRIPT = fileURLToPath(new URL('./cluster-node.mjs', import.meta.url))

/** A node in a child process, with these wills recorded; killed after the test. */
export async function childNode (url: string, nodeId: string, heartbeatMs: number, options: { wills?: ChildWill[], bulkWills?: number } = {}): Promise<ChildNode> {
  const child = spawn(process.execPath, [SCRIPT, JSON.stringify({ url, nodeId, heartbeatMs, ...options })], { stdio: ['ignore', 'pipe', 'inherit'] })
  onTestFinished(() => { child.kill('SIGCONT'); child.kill('SIGKILL') })
  const lines: Array<Record<string, unknown>> = []
  const waiting = new Set<() => void>()
  createInterface({ input: child.stdout! }).on('line', line => {
    lines.push(JSON.parse(line) as Record<string, unknown>)
    for (const w of [...waiting]) w()
  })
  const next = (event: string, timeoutMs = 30_000): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const check = (): void => {
      const i = lines.findIndex(l => l.event === event || l.event === 'error')
      if (i < 0) return
      const [line] = lines.splice(i, 1)
      waiting.delete(check)
      clearTimeout(timer)
      if (line!.event === 'error' && event !== 'error') reject(new Error(`child node ${nodeId}: ${String(line!.code)}: ${String(line!.message)}`))
      else resolve(line!)
    }
    const timer = setTimeout(() => { waiting.delete(check); reject(new Error(`child node ${nodeId}: no ${event} within ${timeoutMs} ms`)) }, timeoutMs)
    waiting.add(check)
    check()
  })
  const ready = await next('ready')
  return {
    child,
    incarnation: ready.incarnation as string,
    next,
    async kill (signal = 'SIGKILL') {
      const at = performance.now()
      child.kill(signal)
      if (signal === 'SIGKILL') await new Promise(resolve => child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve))
      return at
    }
  }
}
