import { expect, test } from 'vitest'
import { runHook } from '../../src/hooks.js'
import { captureLog } from '../helpers/log.js'

const run = (call: () => boolean | Promise<boolean>, timeoutMs = 50) => {
  const log = captureLog()
  const verdict = new Promise<boolean>(resolve => runHook('authorizePublish', call, log.logger, { clientId: 'c' }, resolve, timeoutMs))
  return { verdict, log }
}

test('only true allows; a throw or a rejection denies and is logged', async () => {
  expect(await run(() => true).verdict).toBe(true)
  expect(await run(() => 'yes' as unknown as boolean).verdict).toBe(false)
  expect(await run(async () => true).verdict).toBe(true)
  const thrown = run(() => { throw new Error('boom') })
  expect(await thrown.verdict).toBe(false)
  expect(thrown.log.text()).toContain('authorizePublish hook failed; denied')
  const rejected = run(async () => { throw new Error('later') })
  expect(await rejected.verdict).toBe(false)
  expect(rejected.log.text()).toContain('later')
})

test('an async hook that never settles is denied at its deadline, once, and a late answer is ignored', async () => {
  let answer: (allowed: boolean) => void = () => {}
  const verdicts: boolean[] = []
  const log = captureLog()
  await new Promise<void>(resolve => runHook('authenticate', () => new Promise<boolean>(r => { answer = r }), log.logger, {}, allowed => { verdicts.push(allowed); resolve() }, 30))
  answer(true)
  await Promise.resolve()
  expect(verdicts).toEqual([false])
  expect(log.text()).toContain('did not settle within 30 ms; denied')
})
