/*
 * The password prompt of `switchyard passwd`, over streams that cli.ts
 * passes in (process.stdin and process.stderr there).
 */
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import type { Prompt } from './io.js'

/** A terminal's input: raw mode turns echo off. */
export interface PromptInput extends Readable {
  isTTY?: boolean
  setRawMode?: (mode: boolean) => unknown
}

export interface PromptStreams {
  input: PromptInput
  /** Where the label goes: standard error, so that stdout stays clean. */
  output: (text: string) => void
  /** Ctrl-C typed at a terminal prompt (raw mode swallows SIGINT). */
  onInterrupt: () => void
}

/**
 * Reads one line per call with no echo on a terminal. Not a terminal (a
 * pipe, ssh without -t): it prompts all the same and reads one line per
 * prompt, so that a person typing there is asked for each.
 */
export function createPrompt ({ input, output, onInterrupt }: PromptStreams): Prompt {
  let pipedLines: AsyncIterator<string> | undefined
  return async label => {
    output(label)
    if (input.isTTY !== true || input.setRawMode === undefined) {
      pipedLines ??= createInterface({ input, terminal: false })[Symbol.asyncIterator]()
      const line = await pipedLines.next()
      output('\n')
      return line.done === true ? '' : line.value
    }
    const setRawMode = input.setRawMode.bind(input)
    setRawMode(true)
    input.resume()
    return new Promise(resolve => {
      let value = ''
      const onData = (buf: Buffer) => {
        for (const ch of buf.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            input.off('data', onData)
            setRawMode(false)
            input.pause()
            output('\n')
            resolve(value)
            return
          }
          if (ch === '\u0003') { input.off('data', onData); setRawMode(false); onInterrupt(); return }
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1)
          else value += ch
        }
      }
      input.on('data', onData)
    })
  }
}
