/*
 * Messages between the broker (host-process.ts) and the rule host process
 * (host-main.ts). They travel over Node IPC with 'advanced' serialization, so
 * Uint8Arrays cross as bytes.
 */

/** A message as it crosses to the rule host: the payload as bytes only. */
export interface RuleMessage {
  topic: string
  bytes: Uint8Array
  qos: 0 | 1 | 2
  retain: boolean
  clientId: string | null
  username: string | null
  timestamp: number
  /** MQTT 5 properties, absent when the message has none (the rule then sees `msg.properties` as `{}`). */
  properties?: RuleProperties
}

/**
 * MQTT 5 properties as plain data, as they cross to the rule host and into
 * the isolate: correlation data as bytes (src/properties.ts has the rest).
 */
export interface RuleProperties {
  userProperties?: Record<string, string | string[]>
  contentType?: string
  responseTopic?: string
  correlationData?: Uint8Array
  messageExpiryInterval?: number
  payloadFormatIndicator?: boolean
}

/** An output's properties as normalized inside the isolate: correlation data as bytes, or a string to send as UTF-8. */
export type RawProperties = Omit<RuleProperties, 'correlationData'> & { correlationData?: Uint8Array | string }

/** An output as normalized inside the isolate. */
export interface RawOutput {
  topic: string
  payload: string | Uint8Array
  qos?: 0 | 1 | 2
  retain?: boolean
  properties?: RawProperties
}

export type ConvertResult =
  /** `state`: the conversion's ctx.state changes, [key, JSON text or null when deleted] (rule-state.ts). */
  | { kind: 'ok', outputs: RawOutput[], logs: Array<[string, string]>, state?: Array<[string, string | null]> }
  | { kind: 'error' | 'timeout' | 'memory', error: string, logs: Array<[string, string]> }

export interface LoadedMeta {
  topics: string[]
  qos: 0 | 1 | 2 | undefined
  limits: { timeoutMs: number, memoryLimitMb: number }
}

/** The `msg` a rule's convert() receives: with `payload`, the bytes decoded as UTF-8 by the host. */
export type SandboxMessage = RuleMessage & { payload: string }

export type ToHost =
  /** `state`: the rule's ctx.state as the broker has it, [key, JSON text] (rule-state.ts); absent when empty. */
  | { t: 'load', id: number, name: string, source: string, limits: { timeoutMs: number, memoryLimitMb: number }, state?: Array<[string, string]> }
  | { t: 'unload', name: string }
  /**
   * A batch of conversions; the host acknowledges `seq` ('received') before
   * converting any of it. `frame`: the jobs, { id, rule, msg: RuleMessage },
   * as ipc-frames.ts encodes them (one Buffer, not objects: issue 16).
   */
  | { t: 'convert', seq: number, frame: Uint8Array }

export type FromHost =
  | { t: 'ready' }
  | { t: 'received', seq: number }
  | { t: 'loaded', id: number, ok: true, meta: LoadedMeta }
  | { t: 'loaded', id: number, ok: false, error: string }
  /** `frame`: the results, { id, rule, ms, result: ConvertResult }, as ipc-frames.ts encodes them. */
  | { t: 'results', frame: Uint8Array }
