import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { onTestFinished } from 'vitest'

export const BIN = fileURLToPath(new URL('../../bin/switchyard.js', import.meta.url))

export interface LogLine { level: number, msg: string, [k: string]: unknown }

export interface CliProcess {
  proc: ChildProcess
  logs: LogLine[]
  stderr: () => string
  /** Bound listeners, from the "listening" log lines. */
  ports: Record<string, number>
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>
}

/** Runs the CLI to completion. */
export function runCli (args: string[], cwd: string): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    proc.stdout.on('data', d => { stdout += d })
    proc.stderr.on('data', d => { stderr += d })
    proc.on('error', reject)
    proc.on('close', code => resolve({ code, stdout, stderr }))
  })
}

/** Writes `config` to dir/switchyard.json, starts `switchyard start`, and waits until every listener is bound. */
export async function startCli (dir: string, config: object, extraArgs: string[] = []): Promise<CliProcess> {
  const file = path.join(dir, 'switchyard.json')
  writeFileSync(file, JSON.stringify(config))
  const expected = (config as { listeners?: unknown[] }).listeners?.length ?? 3
  const proc = spawn(BIN, ['start', '--config', file, ...extraArgs], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: LogLine[] = []
  const ports: Record<string, number> = {}
  let stderr = ''
  let buffered = ''
  const exited = new Promise<number | string>(resolve => proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  onTestFinished(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  proc.stderr!.on('data', d => { stderr += d })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`CLI did not bind ${expected} listeners in time; stderr: ${stderr}`)), 15_000)
    proc.stdout!.on('data', chunk => {
      buffered += chunk
      let nl
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        try {
          const entry = JSON.parse(line) as LogLine
          logs.push(entry)
          if (typeof entry.listener === 'string' && typeof entry.port === 'number') ports[entry.listener] = entry.port
        } catch { /* not a log line */ }
      }
      if (Object.keys(ports).length >= expected) { clearTimeout(timer); resolve() }
    })
    exited.then(code => { clearTimeout(timer); reject(new Error(`CLI exited (${code}) before binding; stderr: ${stderr}`)) })
  })
  return { proc, logs, stderr: () => stderr, ports, exited }
}
