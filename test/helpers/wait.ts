/*
 * Waiting on a condition, never on the clock. A sleep as synchronization
 * passes or fails by luck on a slow machine; see helpers/barrier.ts for
 * "nothing (else) arrived".
 */
import net from 'node:net'

/**
 * Polls until `check` holds (it may be async); fails after `timeoutMs` with
 * `what`. The timeout is a bound on a hang, not a timing assertion.
 */
export async function until (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port` (for `until`, waiting on a server in another process). */
export function listening (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { socket.destroy(); resolve(false) })
  })
}
