import { expect, test } from 'vitest'
import { Fifo } from '../../src/broker/fifo.js'

test('first in, first out, across the compaction of its front', () => {
  const q = new Fifo<number>()
  expect(q.shift()).toBeUndefined()
  let next = 0
  let expected = 0
  // interleave pushes and shifts well past the 1,024-item compaction point
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 300; i++) q.push(next++)
    for (let i = 0; i < 200; i++) expect(q.shift()).toBe(expected++)
  }
  expect(q.length).toBe(next - expected)
  while (q.length > 0) expect(q.shift()).toBe(expected++)
  expect(expected).toBe(next)
  expect(q.shift()).toBeUndefined()
})
