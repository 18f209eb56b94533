import { expect, test } from 'vitest'
import { MATCH_CACHE_SIZE, Router } from '../../src/router.js'

// The router remembers a topic's matches (issue 16); changes to the filters must show at once.
test('remembered matches follow every change of the filters', () => {
  const router = new Router()
  router.set('a', ['site/+/temp'])
  expect([...router.match('site/1/temp')]).toEqual(['a'])
  expect([...router.match('site/1/temp')]).toEqual(['a'])
  router.set('b', ['#'])
  expect([...router.match('site/1/temp')].sort()).toEqual(['a', 'b'])
  expect([...router.match('$SYS/x')]).toEqual([]) // [MQTT-4.7.2-1], remembered or not
  router.set('a', ['other/#'])
  expect([...router.match('site/1/temp')]).toEqual(['b'])
  router.delete('b')
  expect([...router.match('site/1/temp')]).toEqual([])
  expect([...router.match('other/x')]).toEqual(['a'])
})

test('more topics than the memory holds still match', () => {
  const router = new Router()
  router.set('a', ['t/+'])
  for (let i = 0; i < MATCH_CACHE_SIZE * 2 + 5; i++) expect(router.match(`t/${i}`).has('a')).toBe(true)
  expect(router.match('u/1').size).toBe(0)
})

// Found with the cache: a topic matched by a plain and a wildcard-first filter
// added the wildcard's key to the plain filter's node in the trie, for good.
test('a key whose wildcard-first filter is removed stops matching', () => {
  const router = new Router()
  router.set('plain', ['site/+/temp'])
  router.set('wild', ['#'])
  expect([...router.match('site/1/temp')].sort()).toEqual(['plain', 'wild'])
  router.set('wild', ['other/#'])
  expect([...router.match('site/1/temp')]).toEqual(['plain'])
  router.delete('plain')
  expect([...router.match('site/1/temp')]).toEqual([])
})
