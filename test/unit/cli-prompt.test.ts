import { PassThrough } from 'node:stream'
import { describe, expect, test, vi } from 'vitest'
import { createPrompt } from '../../src/cli/prompt.js'

describe('the password prompt', () => {
  test('from a pipe: prompts on the output, and reads one line per prompt', async () => {
    const input = new PassThrough()
    let written = ''
    const prompt = createPrompt({ input, output: t => { written += t }, onInterrupt: () => {} })
    input.write('first\nsecond\n')
    expect(await prompt('Password: ')).toBe('first')
    expect(await prompt('Reenter password: ')).toBe('second')
    expect(written).toBe('Password: \nReenter password: \n')
    input.end()
    expect(await prompt('Again: ')).toBe('')
  })

  test('at a terminal: raw mode (no echo), backspace edits, Enter ends; Ctrl-C interrupts', async () => {
    const input = Object.assign(new PassThrough(), { isTTY: true, setRawMode: vi.fn() })
    const onInterrupt = vi.fn()
    const prompt = createPrompt({ input, output: () => {}, onInterrupt })
    const typed = prompt('Password: ')
    input.write('s3crx\u007fet\r')
    expect(await typed).toBe('s3cret')
    expect(input.setRawMode.mock.calls).toEqual([[true], [false]])
    void prompt('Password: ')
    input.write('ab\u0003')
    await vi.waitFor(() => expect(onInterrupt).toHaveBeenCalledOnce())
    expect(input.setRawMode).toHaveBeenLastCalledWith(false)
  })
})
