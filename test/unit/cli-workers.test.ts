import { EventEmitter } from 'node:events'
import { pino } from 'pino'
import { describe, expect, test } from 'vitest'
import { READY_MESSAGE, WORKER_ENV, runPrimary, workerNodeId, type PrimarySignal } from '../../src/cli/workers.js'

/*
 * The primary of cluster.workers (src/cli/workers.ts) with fake workers:
 * test/integration/cluster-workers.test.ts runs the real one.
 */
class FakeWorker extends EventEmitter {
  readonly signals: string[] = []
  readonly process: { pid: number, kill: (signal?: NodeJS.Signals) => boolean }
  constructor (readonly env: Record<string, string>, pid: number) {
    super()
    this.process = { pid, kill: signal => { this.signals.push(signal ?? 'SIGTERM'); return true } }
  }

  ready (): void { this.emit('message', { type: READY_MESSAGE }) }
  exit (code: number | null, signal: string | null = null): void { this.emit('exit', code, signal) }
}

function primary (workers: number, options: { restartDelayMs?: number, stableMs?: number, onReady?: () => void } = {}) {
  const forked: FakeWorker[] = []
  const handlers = new Map<PrimarySignal, () => void>()
  const logs: Array<Record<string, unknown>> = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>) } })
  const run = runPrimary({
    workers,
    nodeId: 'box',
    logger,
    fork: env => { const w = new FakeWorker(env, 1000 + forked.length); forked.push(w); return w },
    onSignal: (signal, handler) => { handlers.set(signal, handler) },
    restartDelayMs: options.restartDelayMs ?? 10,
    maxRestartDelayMs: 40,
    stableMs: options.stableMs ?? 60_000,
    ...(options.onReady ? { onReady: options.onReady } : {})
  })
  const latest = (index: number) => forked.filter(w => w.env[WORKER_ENV] === String(index)).at(-1)!
  return { run, forked, latest, signal: (s: PrimarySignal) => handlers.get(s)!(), logs }
}

const tick = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

describe('runPrimary', () => {
  test('forks one worker per index; onReady once all are ready; SIGTERM is forwarded, and the exit code waits for every worker', async () => {
    let ready = 0
    const p = primary(3, { onReady: () => { ready++ } })
    expect(p.forked.map(w => w.env[WORKER_ENV])).toEqual(['0', '1', '2'])
    expect(workerNodeId('box', 2)).toBe('box-w2')
    p.forked[0]!.ready()
    p.forked[2]!.ready()
    expect(ready).toBe(0)
    p.forked[1]!.ready()
    p.forked[1]!.ready()
    expect(ready).toBe(1)
    p.signal('SIGHUP')
    expect(p.forked.map(w => w.signals)).toEqual([['SIGHUP'], ['SIGHUP'], ['SIGHUP']])
    p.signal('SIGTERM')
    expect(p.forked.map(w => w.signals.at(-1))).toEqual(['SIGTERM', 'SIGTERM', 'SIGTERM'])
    let code: number | undefined
    void p.run.exited.then(c => { code = c })
    p.forked[0]!.exit(0)
    p.forked[1]!.exit(0)
    await tick(5)
    expect(code).toBeUndefined()
    p.forked[2]!.exit(0)
    expect(await p.run.exited).toBe(0)
    // no restart during a shutdown
    expect(p.forked).toHaveLength(3)
  })

  test('a worker that dies after the start is restarted under the same index, with a doubling backoff', async () => {
    const p = primary(2)
    for (const w of p.forked) w.ready()
    p.latest(1).exit(null, 'SIGKILL')
    expect(p.forked).toHaveLength(2)
    await tick(30)
    expect(p.forked).toHaveLength(3)
    expect(p.latest(1).env[WORKER_ENV]).toBe('1')
    p.latest(1).ready()
    p.latest(1).exit(1)
    p.latest(0).exit(1)
    const died = p.logs.filter(l => l.msg === 'worker died; restarting it')
    expect(died.map(l => [l.worker, l.nodeId, l.delayMs])).toEqual([[1, 'box-w1', 10], [1, 'box-w1', 20], [0, 'box-w0', 10]])
    await tick(60)
    expect(p.forked).toHaveLength(5)
    p.signal('SIGINT')
    for (const w of [p.latest(0), p.latest(1)]) w.exit(0)
    expect(await p.run.exited).toBe(0)
  })

  test('a worker that fails during the first start stops the others, and the exit code is 1', async () => {
    const p = primary(2)
    p.forked[0]!.ready()
    p.forked[1]!.exit(1)
    expect(p.forked[0]!.signals).toEqual(['SIGTERM'])
    p.forked[0]!.exit(0)
    expect(await p.run.exited).toBe(1)
    expect(p.forked).toHaveLength(2)
  })

  test('a second signal right after the first is the same signal (Ctrl-C reaches the primary and, from the terminal, the workers)', async () => {
    const p = primary(1)
    p.forked[0]!.ready()
    p.signal('SIGINT')
    p.signal('SIGINT')
    expect(p.forked[0]!.signals).toEqual(['SIGINT'])
  })

  test('onReady throwing (the pid file) shuts down with 1', async () => {
    const p = primary(1, { onReady: () => { throw new Error('EACCES') } })
    p.forked[0]!.ready()
    expect(p.forked[0]!.signals).toEqual(['SIGTERM'])
    p.forked[0]!.exit(0)
    expect(await p.run.exited).toBe(1)
  })
})
