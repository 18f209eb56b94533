/*
 * The out queue (src/bridges/queue.ts) over a real LevelDB
 * (queue-store.ts): order kept across a reopen, acknowledged entries gone,
 * the bound refusing the newest, in-flight entries back at the head after a
 * disconnect, QoS 0 never written, and one bridge's keys apart from another's.
 */
import { describe, expect, test } from 'vitest'
import { Level } from 'level'
import { OutQueue } from '../../src/bridges/queue.js'
import { levelQueueStore, type OutMessage } from '../../src/bridges/queue-store.js'
import { tempDir } from '../helpers/broker.js'

const msg = (payload: string, qos: 0 | 1 | 2 = 1): OutMessage => ({ topic: 'plant/t', payload: Buffer.from(payload), qos, retain: false })

async function openDb (dir: string): Promise<Level<string, Buffer>> {
  const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
  await db.open()
  return db
}

async function reopened (dir: string, name: string, max = 100): Promise<{ queue: OutQueue, db: Level<string, Buffer>, payloads: string[] }> {
  const db = await openDb(dir)
  const queue = new OutQueue(levelQueueStore(db, name, err => { throw err }), max)
  await queue.restore()
  const payloads: string[] = []
  for (let e = queue.take(); e !== undefined; e = queue.take()) payloads.push(e.message.payload.toString())
  queue.requeue()
  return { queue, db, payloads }
}

describe('bridge out queue on LevelDB', () => {
  test('kept in order across a reopen; acknowledged entries and QoS 0 are not; properties survive', async () => {
    const dir = tempDir()
    const db = await openDb(dir)
    const queue = new OutQueue(levelQueueStore(db, 'plant', err => { throw err }), 100)
    for (let i = 0; i < 10; i++) queue.push(msg(String(i)))
    queue.push(msg('qos0', 0))
    queue.push({ ...msg('props', 2), properties: { contentType: 'text/plain', correlationData: Buffer.from([0, 1, 2]), userProperties: { a: ['1', '2'] } } })
    // The first three sent and acknowledged (some before their put was even written).
    for (let i = 0; i < 3; i++) queue.done(queue.take()!.seq)
    await queue.flush()
    await db.close()

    const again = await reopened(dir, 'plant')
    expect(again.payloads).toEqual(['3', '4', '5', '6', '7', '8', '9', 'props'])
    const db2 = again.db
    const entries = await levelQueueStore(db2, 'plant', () => {}).load()
    expect(entries.at(-1)!.message).toEqual({ topic: 'plant/t', payload: Buffer.from('props'), qos: 2, retain: false, properties: { contentType: 'text/plain', correlationData: Buffer.from([0, 1, 2]), userProperties: { a: ['1', '2'] } } })
    // New entries follow the old ones.
    again.queue.push(msg('after'))
    await again.queue.flush()
    await db2.close()
    const last = await reopened(dir, 'plant')
    expect(last.payloads.at(-1)).toBe('after')
    await last.db.close()
  })

  test('a disconnect puts the in-flight entries back at the head, in order; the bound refuses the newest', async () => {
    const dir = tempDir()
    const db = await openDb(dir)
    const queue = new OutQueue(levelQueueStore(db, 'plant', err => { throw err }), 4)
    expect(['a', 'b', 'c', 'd', 'e'].map(p => queue.push(msg(p)) !== false)).toEqual([true, true, true, true, false])
    const first = queue.take()!
    const second = queue.take()!
    queue.done(first.seq)
    expect(queue.requeue()).toBe(0)
    expect(queue.take()!.seq).toBe(second.seq)
    expect(queue.size).toBe(3)
    await queue.flush()
    await db.close()
  })

  test('each bridge reads only its own entries, including names that are prefixes of others', async () => {
    const dir = tempDir()
    const db = await openDb(dir)
    const a = new OutQueue(levelQueueStore(db, 'plant', err => { throw err }), 10)
    const b = new OutQueue(levelQueueStore(db, 'plant-2', err => { throw err }), 10)
    a.push(msg('a'))
    b.push(msg('b'))
    await Promise.all([a.flush(), b.flush()])
    await db.close()
    const plant = await reopened(dir, 'plant')
    expect(plant.payloads).toEqual(['a'])
    await plant.db.close()
  })
})
