import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { onTestFinished } from 'vitest'
import type { Output } from '../../src/cli/io.js'

/** An Output that keeps what the command wrote to stdout and stderr. */
export function memoryOutput (): Output & { readonly stdout: string, readonly stderr: string } {
  let stdout = ''
  let stderr = ''
  return {
    out: text => { stdout += text },
    err: text => { stderr += text },
    get stdout () { return stdout },
    get stderr () { return stderr }
  }
}

/** A temporary directory removed after the current test (without loading the broker, as helpers/broker.ts does). */
export function scratchDir (): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-cli-'))
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}
