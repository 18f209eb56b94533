/*
 * What a command writes to, and how it reports. The commands get an Output
 * from cli.ts (process.stdout and process.stderr there, strings in tests)
 * and return their exit code; none of them touches `process`.
 */
import { SwitchyardError } from '../errors.js'

export interface Output {
  /** Standard output: results (JSON, reports, "configuration OK"). */
  out: (text: string) => void
  /** Standard error: problems, warnings, prompts. */
  err: (text: string) => void
}

/** Asks for one line with no echo (a password); resolves with what was typed. */
export type Prompt = (label: string) => Promise<string>

/** A usage error: says so, points to --help, and gives exit code 2. */
export function usage (io: Output, problem: string): number {
  io.err(`switchyard: ${problem}\nTry 'switchyard --help'.\n`)
  return 2
}

/** Prints an error that stops a command, with its code when it has one (docs/errors.md); exit code 1. */
export function reportError (io: Output, err: unknown): number {
  // A ConfigError is a SwitchyardError: its code is printed too.
  if (err instanceof SwitchyardError) {
    io.err(`switchyard: ${err.code}: ${err.message}\n`)
  } else {
    io.err(`switchyard: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
  }
  return 1
}
