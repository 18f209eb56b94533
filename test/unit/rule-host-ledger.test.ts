/*
 * The broker's books on the rule host process, without a process: the
 * window of conversions in the host, which conversions a dead host costs
 * (Conversions) and which loads it fails or replays (HostLoads).
 */
import { describe, expect, test } from 'vitest'
import type { RunResult } from '../../src/rules/contracts.js'
import { Conversions, HOST_WINDOW } from '../../src/rules/conversions.js'
import { HostLoads } from '../../src/rules/host-loads.js'

const msg = (n: number) => ({ topic: 't', bytes: new Uint8Array([n]), qos: 0 as const, retain: false, clientId: null, username: null, timestamp: 0 })
const limits = { timeoutMs: 100, memoryLimitMb: 32 }

describe('Conversions', () => {
  test('a dead host loses what it acknowledged; unacknowledged batches and new work wait for the next', () => {
    const book = new Conversions()
    const settled: Array<[number, RunResult['kind']]> = []
    const add = (rule: string, n: number) => book.add(rule, msg(n), r => settled.push([n, r.kind]))
    add('a', 1); add('a', 2); add('b', 3)
    const first = book.takeBatch()!
    book.acknowledged(first.seq) // the host has 1, 2, 3
    add('a', 4)
    const second = book.takeBatch()! // sent, never acknowledged
    add('a', 5) // batched, not sent
    book.settle(first.jobs[0]!.id, { kind: 'ok', outputs: [], logs: [] }, 1)
    expect(book.inflight('a')).toBe(3)

    expect(book.hostDied('rule host process died (SIGKILL)')).toEqual({ lost: 2, lostByRule: { a: 1, b: 1 }, waiting: 2 })
    expect(settled).toEqual([[1, 'ok'], [2, 'crash'], [3, 'crash']])
    expect(book.inflight('a')).toBe(2)
    expect(book.inflight('b')).toBe(0)
    // The next host gets 4 (resent first) and then 5, in order.
    const resent = book.takeBatch()!
    expect(resent.seq).toBeGreaterThan(second.seq)
    expect(resent.jobs.map(j => j.msg.bytes[0])).toEqual([4, 5])
  })

  test('at most the window per rule is in the host; the rest waits here, in order, and is counted as waiting', () => {
    const book = new Conversions(3)
    const bytes = (b: { jobs: Array<{ rule: string, msg: { bytes: Uint8Array } }> } | undefined) => b?.jobs.map(j => `${j.rule}${j.msg.bytes[0]}`)
    for (let n = 1; n <= 5; n++) book.add('a', msg(n), () => {})
    book.add('b', msg(1), () => {})
    book.add('b', msg(2), () => {})
    const first = book.takeBatch()!
    expect(bytes(first)).toEqual(['a1', 'a2', 'a3', 'b1', 'b2'])
    expect([book.inHost('a'), book.queued, book.inflight('a')]).toEqual([3, 2, 5]) // flow control counts what waits here too
    expect(book.takeBatch()).toBeUndefined() // a's window is full, b has nothing
    book.settle(first.jobs[0]!.id, { kind: 'ok', outputs: [], logs: [] }, 1)
    expect(bytes(book.takeBatch())).toEqual(['a4'])
    book.settle(first.jobs[1]!.id, { kind: 'ok', outputs: [], logs: [] }, 1)
    book.settle(first.jobs[2]!.id, { kind: 'ok', outputs: [], logs: [] }, 1)
    expect(bytes(book.takeBatch())).toEqual(['a5'])
    expect([book.inHost('a'), book.queued, book.inflight('a')]).toEqual([2, 0, 2])
  })

  test(`a crash loses at most the window (${HOST_WINDOW} by default) of a long backlog; the rest goes to the next host in order`, () => {
    const book = new Conversions()
    const kinds = new Map<number, string>()
    const total = 10 * HOST_WINDOW
    for (let n = 0; n < total; n++) book.add('a', { ...msg(0), topic: String(n) }, r => kinds.set(n, r.kind))
    const sent = book.takeBatch()!
    book.acknowledged(sent.seq)
    expect(sent.jobs.length).toBe(HOST_WINDOW)
    expect(book.takeBatch()).toBeUndefined()
    expect(book.hostDied('rule host process died (SIGKILL)')).toEqual({ lost: HOST_WINDOW, lostByRule: { a: HOST_WINDOW }, waiting: total - HOST_WINDOW })
    expect([...kinds.values()].every(k => k === 'crash')).toBe(true)
    expect(kinds.size).toBe(HOST_WINDOW)
    expect([book.inHost('a'), book.inflight('a')]).toEqual([0, total - HOST_WINDOW])
    const next = book.takeBatch()!
    expect(next.jobs.map(j => Number(j.msg.topic))).toEqual(Array.from({ length: HOST_WINDOW }, (_, i) => HOST_WINDOW + i))
  })

  test('a batch the dead host never acknowledged goes back ahead of its rule\'s queue, within the window', () => {
    const book = new Conversions(2)
    const settled: Array<[number, RunResult['kind']]> = []
    for (let n = 1; n <= 5; n++) book.add('a', msg(n), r => settled.push([n, r.kind]))
    const first = book.takeBatch()! // 1, 2
    book.acknowledged(first.seq)
    book.settle(first.jobs[0]!.id, { kind: 'ok', outputs: [], logs: [] }, 1)
    expect(book.takeBatch()!.jobs.map(j => j.msg.bytes[0])).toEqual([3]) // never acknowledged
    expect(book.hostDied('rule host process died (SIGKILL)')).toEqual({ lost: 1, lostByRule: { a: 1 }, waiting: 3 })
    expect(settled).toEqual([[1, 'ok'], [2, 'crash']])
    expect(book.takeBatch()!.jobs.map(j => j.msg.bytes[0])).toEqual([3, 4])
  })

  test('unloading a rule settles what waits for it here; what the host holds is its to answer', () => {
    const book = new Conversions(1)
    const kinds: string[] = []
    book.add('a', msg(1), r => kinds.push(`1:${r.kind}`))
    book.add('a', msg(2), r => kinds.push(`2:${r.kind}`))
    book.add('b', msg(3), r => kinds.push(`3:${r.kind}`))
    book.takeBatch()
    book.dropQueued('a', { kind: 'error', error: 'rule was unloaded', logs: [] })
    expect(kinds).toEqual(['2:error'])
    expect([book.inflight('a'), book.inHost('a'), book.queued]).toEqual([1, 1, 0])
  })

  test('abandon settles everything as crash', () => {
    const book = new Conversions()
    const kinds: string[] = []
    book.add('a', msg(1), r => kinds.push(r.kind))
    book.takeBatch()
    book.add('a', msg(2), r => kinds.push(r.kind))
    book.abandon('no host')
    expect(kinds).toEqual(['crash', 'crash'])
    expect(book.inflight('a')).toBe(0)
    expect(book.takeBatch()).toBeUndefined()
  })
})

describe('HostLoads', () => {
  test('a new host gets every loaded rule again, then the loads asked meanwhile', async () => {
    const loads = new HostLoads()
    const a = loads.ask('a', 'A', limits)
    loads.answered(a.message.id, { ok: true, meta: { topics: ['x'], qos: undefined, limits } })
    await a.outcome
    const b = loads.ask('b', 'B', limits)
    loads.hold(b.message)
    expect(loads.replay(() => {}).map(m => [m.name, m.source])).toEqual([['a', 'A'], ['b', 'B']])
  })

  test('a host dying during a new load fails it; a restore and a held load wait', async () => {
    const loads = new HostLoads()
    const old = loads.ask('old', 'O', limits)
    loads.answered(old.message.id, { ok: true, meta: { topics: ['x'], qos: undefined, limits } })
    await old.outcome
    const restoreFailed: string[] = []
    expect(loads.replay(name => restoreFailed.push(name)).map(m => m.name)).toEqual(['old']) // being restored
    const fresh = loads.ask('new', 'N', limits) // sent
    const held = loads.ask('later', 'L', limits)
    loads.hold(held.message)
    loads.hostDied('rule host process died (SIGABRT)')
    expect(await fresh.outcome).toEqual({ ok: false, error: 'rule host process died (SIGABRT) while loading this rule' })
    expect(restoreFailed).toEqual([])
    expect(loads.replay(() => {}).map(m => m.name)).toEqual(['old', 'later'])
  })

  test('abandon fails every waiting load with the error', async () => {
    const loads = new HostLoads()
    const a = loads.ask('a', 'A', limits)
    loads.hold(a.message)
    loads.abandon('ERR_RULES_HOST')
    expect(await a.outcome).toEqual({ ok: false, error: 'ERR_RULES_HOST' })
    expect(loads.replay(() => {})).toEqual([])
  })
})
