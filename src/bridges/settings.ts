/*
 * A bridge's connection settings as MQTT.js takes them, with what the config
 * only names read in: the password from its environment variable, the CA,
 * certificate and key from their files. Read at start and again on reload
 * (SIGHUP): a bridge whose settings (fingerprint) did not change keeps its
 * connection.
 */
import { createHash, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import type { IClientOptions } from 'mqtt'
import type { BridgeConfig } from './config.js'

export interface BridgeSettings {
  readonly url: string
  readonly options: IClientOptions
  /** Changes when anything the connection depends on changes, secrets and file contents included. */
  readonly fingerprint: string
}

/** Throws an Error naming the key and the fix when a file or the password variable cannot be read. */
export function resolveSettings (b: BridgeConfig, index: number, env: Readonly<Record<string, string | undefined>>): BridgeSettings {
  const key = `bridges[${index}]`
  const read = (field: 'ca' | 'cert' | 'key'): Buffer | undefined => {
    const file = b[field]
    if (file === null) return undefined
    try {
      return readFileSync(file)
    } catch (err) {
      throw new Error(`${key}.${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
  }
  let password = b.password
  if (b.passwordEnv !== undefined) {
    password = env[b.passwordEnv]
    if (password === undefined) throw new Error(`${key}.passwordEnv: the environment variable ${b.passwordEnv} is not set; set it to the bridge's password before starting`)
  }
  const ca = read('ca')
  const cert = read('cert')
  const clientKey = read('key')
  try {
    // A CA that is not PEM would be ignored by TLS (and every connection refused): say so now.
    if (ca !== undefined) new X509Certificate(ca) // eslint-disable-line no-new
    // The key must be the certificate's, as the TLS connection will check.
    if (cert !== undefined) createSecureContext({ cert, key: clientKey })
  } catch (err) {
    throw new Error(`${key}: cannot use ${[b.ca, b.cert, b.key].filter(f => f !== null).join(', ')}: ${(err as Error).message}; give PEM files, and the key the certificate was issued for, without a passphrase`)
  }
  const options: IClientOptions = {
    clientId: b.clientId,
    clean: b.cleanSession,
    keepalive: b.keepalive,
    protocolVersion: b.protocolVersion,
    // MQTT 5 ends a session with its connection unless asked otherwise [MQTT-3.1.2-23]:
    // a persistent session is what lets the remote broker queue for us while we are away.
    ...(b.protocolVersion === 5 && !b.cleanSession ? { properties: { sessionExpiryInterval: 0xFFFFFFFF } } : {}),
    ...(b.username === undefined ? {} : { username: b.username }),
    ...(password === undefined ? {} : { password }),
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(clientKey === undefined ? {} : { key: clientKey }),
    // The remote broker's certificate is always verified (no option turns it off).
    rejectUnauthorized: true
  }
  const hash = createHash('sha256')
  hash.update(JSON.stringify({ ...b, password: password ?? null }))
  for (const file of [ca, cert, clientKey]) hash.update(file ?? Buffer.alloc(0)).update('\0')
  return { url: b.address, options, fingerprint: hash.digest('hex') }
}

/** The address without credentials, for logs and GET /api/bridges. */
export function shownAddress (address: string): string {
  return address.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1')
}
