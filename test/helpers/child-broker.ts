/*
 * A whole Switchyard broker (createBroker from dist/: build first) in a child
 * process of its own (helpers/cluster-broker.mjs), so that a test can kill -9
 * it. Killed (-9) after the test if still running.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { onTestFinished } from 'vitest'
import { tempDir } from './broker.js'

const SCRIPT = fileURLToPath(new URL('./cluster-broker.mjs', import.meta.url))

export interface ChildBroker {
  /** The script's first line: { event: 'ready', port, admin }. */
  readonly ready: Record<string, unknown>
  /** The first listener's port. */
  readonly port: number
  /** The admin API's port, when the config has `admin`. */
  readonly admin?: number
  /** Sends SIGKILL and waits for the exit; resolves with performance.now() just before the signal. */
  kill(): Promise<number>
}

/**
 * A cluster node's config: MQTT on a free port, Redis persistence, no log,
 * an empty rules folder; `extra`'s keys are added, or replace these.
 */
export function clusterNodeConfig (redisUrl: string, nodeId: string, heartbeatMs: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    listeners: [{ type: 'tcp', port: 0 }],
    persistence: { type: 'redis' },
    log: { level: 'silent' },
    rules: { dir: tempDir('switchyard-rules-') },
    cluster: { redis: redisUrl, nodeId, heartbeatMs },
    ...extra
  }
}

/** Starts a broker with `config` (createBroker's input); `label` names it in errors; `nodeArgs` go before the script. */
export async function spawnChildBroker (config: object, label: string, options: { nodeArgs?: string[] } = {}): Promise<ChildBroker> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), SCRIPT, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] })
  onTestFinished(() => { child.kill('SIGKILL') })
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${label}: not ready within 20 s`)), 20_000)
    createInterface({ input: child.stdout! }).once('line', l => { clearTimeout(timer); resolve(JSON.parse(l) as Record<string, unknown>) })
  })
  if (ready.event !== 'ready') throw new Error(`${label}: ${String(ready.code)}: ${String(ready.message)}`)
  return {
    ready,
    port: ready.port as number,
    ...(typeof ready.admin === 'number' ? { admin: ready.admin } : {}),
    async kill () {
      const at = performance.now()
      child.kill('SIGKILL')
      await new Promise(resolve => child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve))
      return at
    }
  }
}
