/*
 * A node's per-incarnation set (expiry.ts sessions:<incarnation>, wills.ts
 * wills:<incarnation>): what the survivors take over when that node dies.
 * Read in SSCAN batches, so that 10,000 members and more never make one
 * large reply.
 */
import type { Redis } from 'ioredis'

/**
 * The incarnations membership.ts lists as dead (hash `<prefix>dead`, kept
 * for 10 heartbeats at least, and while such a set exists) whose set
 * `setKey(incarnation)` still exists: the ones with work left.
 */
export async function deadWithSet (redis: Redis, prefix: string, setKey: (incarnation: string) => string): Promise<string[]> {
  const dead = await redis.hkeys(prefix + 'dead')
  const pipeline = redis.pipeline()
  for (const incarnation of dead) pipeline.exists(setKey(incarnation))
  const exists = (await pipeline.exec()) ?? []
  return dead.filter((_, i) => exists[i]?.[1] === 1)
}

/**
 * The members of set `key`, a batch (SSCAN COUNT `count`, possibly empty) at
 * a time; the next batch is read once the caller is done with this one, so
 * members it removes meanwhile are fine (SSCAN's guarantees).
 */
export async function * scanSet (redis: Redis, key: string, count: number): AsyncGenerator<string[]> {
  let cursor = '0'
  do {
    const [next, ids] = await redis.sscan(key, cursor, 'COUNT', count)
    cursor = next
    yield ids
  } while (cursor !== '0')
}
