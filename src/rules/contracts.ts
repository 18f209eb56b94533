/*
 * What the rules engine needs from the rest of the broker, as interfaces: a
 * runner that loads rules and converts messages (the rule host process in
 * production, host-process.ts), a source of rule files (loader.ts), a
 * publisher (the broker core), a feed of messages (the bus) and a flow
 * target (pausing a client). The
 * composition root (server.ts) hands in the real ones; unit tests hand in
 * small fakes.
 */
import type { Message } from '../message.js'
import type { ConvertResult, LoadedMeta, RuleMessage } from './protocol.js'
import type { Limits } from './validate.js'

/** Publishes rule outputs and rule status through the broker (its origin says which). */
export interface Publisher {
  publish(message: Message): Promise<void>
}

/** Every message the broker routes (the bus, src/bus.ts); tap() returns the function that stops it. */
export interface Feed {
  tap(handler: (message: Message) => void): () => void
}

/** Flow control: stop and restart reading from a publishing client. */
export interface FlowTarget {
  pause(clientId: string): void
  resume(clientId: string): void
}

/** A conversion's result; 'crash' when the process running it died with it (not the rule's failure). */
export type RunResult = ConvertResult | { kind: 'crash', error: string, logs: [] }
export type LoadOutcome = { ok: true, meta: LoadedMeta } | { ok: false, error: string }
export type RunDone = (result: RunResult, ms: number) => void

/** Loads rules and converts messages, off the broker's event loop. */
export interface RuleRunner {
  /** The process running the rules, while there is one. */
  readonly pid: number | undefined
  /** Set when the runner could not start within its deadline; loads then fail with it. */
  readonly startError: Error | undefined
  /** Conversions asked for and not yet settled, for one rule. */
  inflight(rule: string): number
  /** `state`: the rule's ctx.state (rule-state-store.ts), live: a restarted host gets it as it is then. */
  load(name: string, source: string, limits: Limits, state?: ReadonlyMap<string, string>): Promise<LoadOutcome>
  unload(name: string): void
  convert(rule: string, msg: RuleMessage, done: RunDone): void
  close(): Promise<void>
}

export type RuleFileChange =
  /** `error`: the file cannot become a module (a .ts file whose types cannot be stripped); it fails its load. */
  | { kind: 'changed', name: string, file: string, source: string, hash: string, error?: string }
  | { kind: 'removed', name: string, file: string }

/** Where rule files come from: reports every change, including the first load. */
export interface RuleSource {
  /** Reports what exists now, then keeps watching. */
  start(onChanges: (changes: RuleFileChange[]) => Promise<void>): Promise<void>
  rescan(): Promise<void>
  close(): void
}
