/*
 * Authentication and authorization hooks from the embedding application
 * (createBroker(config, { hooks })). Each runs after the password file and
 * the ACL have allowed, and only then: the files stay the floor, a hook can
 * only deny more. A hook may be async. A hook that throws, or rejects, denies
 * and is logged.
 */
import type { Logger } from 'pino'
import type { QoS } from './message.js'

export interface HookClient {
  readonly clientId: string
  /** The username it logged in with (or its certificate's CN, on a useIdentityAsUsername listener); null when anonymous. */
  readonly username: string | null
  /** The peer address, host:port. */
  readonly remote: string
}

export interface AuthenticateRequest extends HookClient {
  /** The CONNECT password, as bytes; null when none was sent. */
  readonly password: Buffer | null
}

export interface Hooks {
  /** After the password file accepted the client: return false to refuse it (CONNACK 5, counted in authFailures). */
  authenticate?: (request: AuthenticateRequest) => boolean | Promise<boolean>
  /**
   * After the ACL allowed a client's PUBLISH (or its will): return false to
   * deny it. Denied is as an ACL deny: acknowledged and dropped, counted in
   * deniedPublishes [MQTT-3.3.5]. Not called for broker.publish() or rule outputs.
   */
  authorizePublish?: (client: HookClient, message: { readonly topic: string, readonly payload: Buffer, readonly qos: QoS, readonly retain: boolean }) => boolean | Promise<boolean>
  /** After the ACL allowed a subscription: return false to deny it (SUBACK 0x80, counted in deniedSubscriptions). */
  authorizeSubscribe?: (client: HookClient, subscription: { readonly filter: string, readonly qos: QoS }) => boolean | Promise<boolean>
}

/**
 * Runs one hook call and passes `true` (allowed) or `false` to `then`. A sync
 * answer continues synchronously; anything but `true` denies. A throw or a
 * rejection denies and is logged with `context`.
 */
/** How long an async hook may take before it is denied. */
export const HOOK_TIMEOUT_MS = 10_000

export function runHook (hook: string, call: () => boolean | Promise<boolean>, logger: Logger, context: object, then: (allowed: boolean) => void, timeoutMs = HOOK_TIMEOUT_MS): void {
  const failed = (err: unknown) => {
    logger.error({ ...context, hook, err: err instanceof Error ? err.message : String(err) }, `${hook} hook failed; denied`)
    then(false)
  }
  let result: boolean | Promise<boolean>
  try {
    result = call()
  } catch (err) {
    failed(err)
    return
  }
  if (result !== null && typeof result === 'object' && typeof (result as Promise<boolean>).then === 'function') {
    // A hook that never settles would hold the connection, its slot under
    // limits.maxConnections and, for authorizePublish, every later PUBLISH
    // of the client: past HOOK_TIMEOUT_MS it is denied, once.
    let settled = false
    const settle = (allowed: boolean) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      then(allowed)
    }
    const timer = setTimeout(() => {
      if (settled) return
      logger.error({ ...context, hook, timeoutMs }, `${hook} hook did not settle within ${timeoutMs} ms; denied`)
      settle(false)
    }, timeoutMs)
    ;(result as Promise<boolean>).then(allowed => settle(allowed === true), err => {
      if (settled) return
      logger.error({ ...context, hook, err: err instanceof Error ? err.message : String(err) }, `${hook} hook failed; denied`)
      settle(false)
    })
  } else {
    then(result === true)
  }
}

/**
 * Keeps one client's PUBLISHes in order through an async authorizePublish:
 * each continues only after the one before it, so deliveries and PUBACKs keep
 * the order the packets came in [MQTT-4.6.0-2], however the hook's promises
 * settle.
 */
export class InOrder<K extends object> {
  readonly #tails = new WeakMap<K, Promise<void>>()

  run (key: K, step: (done: () => void) => void): void {
    const before = this.#tails.get(key)
    let done!: () => void
    const tail = new Promise<void>(resolve => { done = resolve })
    this.#tails.set(key, tail)
    const go = () => step(() => {
      done()
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    if (before === undefined) go()
    else void before.then(go)
  }
}
