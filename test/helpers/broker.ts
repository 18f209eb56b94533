import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { onTestFinished } from 'vitest'
import type { Logger } from 'pino'
import { createBroker, type Broker, type ConfigInput } from '../../src/index.js'
import { generateDevCertificates } from '../../src/listeners/certs.js'

/** A temporary directory removed after the current test. */
export function tempDir (prefix = 'switchyard-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix))
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

let certDir: string | undefined
/** A development CA and server certificate, generated once per test file. */
export function testCerts (): { dir: string, ca: string, cert: string, key: string } {
  if (certDir === undefined) {
    certDir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-certs-'))
    generateDevCertificates(certDir)
  }
  return { dir: certDir, ca: path.join(certDir, 'ca.crt'), cert: path.join(certDir, 'server.crt'), key: path.join(certDir, 'server.key') }
}

/** Starts a real broker on ephemeral ports, closed after the current test. Rules come from an empty temporary directory unless given. */
export async function startBroker (config: ConfigInput = {}, options: { baseDir?: string, logger?: Logger } = {}): Promise<Broker> {
  const broker = await createBroker({
    listeners: [{ type: 'tcp', port: 0 }],
    persistence: { type: 'memory' },
    log: { level: 'silent' },
    rules: { dir: tempDir('switchyard-rules-') },
    ...config
  }, options)
  onTestFinished(() => broker.close())
  return broker
}

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss'
export const TRANSPORTS: Transport[] = ['tcp', 'tls', 'ws', 'wss']

/** A listener config for each transport, on port 0, using the test certificates. */
export function listenerFor (type: Transport): NonNullable<ConfigInput['listeners']>[number] {
  const { cert, key } = testCerts()
  switch (type) {
    case 'tcp': return { type, port: 0 }
    case 'ws': return { type, port: 0 }
    case 'tls': return { type, port: 0, cert, key }
    case 'wss': return { type, port: 0, cert, key }
  }
}

export function urlFor (broker: Broker, type: Transport = 'tcp'): string {
  const l = broker.listeners.find(x => x.type === type)
  if (!l) throw new Error(`broker has no ${type} listener`)
  const scheme = { tcp: 'mqtt', tls: 'mqtts', ws: 'ws', wss: 'wss' }[type]
  return `${scheme}://127.0.0.1:${l.port}${l.path ?? ''}`
}
