import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { createSecureContext } from 'node:tls'
import forge from 'node-forge'
import type { TlsListenerConfig, WssListenerConfig } from '../config.js'
import { ConfigError } from '../errors.js'

/** Options for tls.createServer / setSecureContext. */
export interface TlsMaterial {
  cert: Buffer
  key: Buffer
  ca?: Buffer
  /** Ask for a client certificate, and refuse the handshake without a valid one. */
  requestCert: boolean
  rejectUnauthorized: boolean
}

/** Where a TLS listener sits in the config, for loadTlsMaterial's messages. */
export interface TlsSite {
  /** The listener's key in the config, e.g. `listeners[1]`. */
  key: string
  /** Files are named relative to it (the config file's directory); absolute without it. */
  baseDir?: string
}

/**
 * Reads a TLS listener's files, generating a development certificate first
 * when the config named none, and checks that they can be used together:
 * parseConfig() checked only that they exist. Any problem is a ConfigError
 * with code ERR_TLS, one line per problem, naming the key and the files;
 * otherwise Node would throw a bare ERR_OSSL_X509_KEY_VALUES_MISMATCH.
 */
export function loadTlsMaterial (config: TlsListenerConfig | WssListenerConfig, devCertDir: string, onGenerated: (caPath: string) => void, site: TlsSite = { key: 'listener' }): TlsMaterial {
  if (config.generated && !(existsSync(config.cert) && existsSync(config.key))) {
    onGenerated(generateDevCertificates(devCertDir))
  }
  const problems: string[] = []
  let cause: unknown
  const fail = (problem: string, err: unknown) => { problems.push(problem); cause ??= err }
  const show = (file: string) => {
    if (site.baseDir === undefined) return file
    const relative = path.relative(site.baseDir, file)
    return relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? file : relative
  }
  const read = (field: 'cert' | 'key' | 'ca'): Buffer | undefined => {
    const file = config[field]
    if (file === undefined) return undefined
    try {
      return readFileSync(file)
    } catch (err) {
      fail(`${site.key}.${field}: cannot read ${show(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, err)
      return undefined
    }
  }
  const cert = read('cert')
  const key = read('key')
  const ca = read('ca')
  let certificate: X509Certificate | undefined
  let privateKey: KeyObject | undefined
  if (cert) {
    try { certificate = new X509Certificate(cert) } catch (err) {
      fail(`${site.key}.cert: ${show(config.cert)} is not a PEM certificate (${(err as Error).message}); give the server certificate, PEM-encoded`, err)
    }
  }
  if (key) {
    try { privateKey = createPrivateKey(key) } catch (err) {
      fail(`${site.key}.key: ${show(config.key)} is not a usable PEM private key (${(err as Error).message}); give the certificate's private key, PEM-encoded and without a passphrase`, err)
    }
  }
  if (certificate && privateKey && !certificate.checkPrivateKey(privateKey)) {
    fail(`${site.key}.key: ${show(config.key)} does not match ${site.key}.cert (${show(config.cert)}); give the private key that certificate was issued for, or the certificate issued for this key`, undefined)
  }
  if (ca) {
    try { new X509Certificate(ca) } catch (err) {
      fail(`${site.key}.ca: ${show(config.ca!)} is not a PEM certificate (${(err as Error).message}); give the CA certificate that signs client certificates`, err)
    }
  }
  if (problems.length === 0) {
    // Whatever else OpenSSL refuses (a key too weak for its security level...).
    try { createSecureContext({ cert, key, ca }) } catch (err) {
      fail(`${site.key}: cannot use ${show(config.cert)} with ${show(config.key)}: ${(err as Error).message}`, err)
    }
  }
  if (problems.length > 0) throw new ConfigError(problems, undefined, { code: 'ERR_TLS', cause })
  return {
    cert: cert!,
    key: key!,
    ...(ca === undefined ? {} : { ca }),
    requestCert: config.requestCert,
    rejectUnauthorized: config.requestCert
  }
}

/** The client certificate's common name, which useIdentityAsUsername makes the username. */
export function certificateIdentity (socket: { getPeerCertificate(): { subject?: { CN?: string | string[] } } }): string | undefined {
  const cn = socket.getPeerCertificate().subject?.CN
  return Array.isArray(cn) ? cn[0] : cn
}

/**
 * Writes a development CA (ca.crt, ca.key) and a server certificate for
 * localhost, 127.0.0.1 and ::1 signed by it (server.crt, server.key) into
 * `dir`, keeping an existing CA. Keys are written 0600. Returns the CA path,
 * which clients must trust (mosquitto_sub --cafile).
 */
export function generateDevCertificates (dir: string): string {
  mkdirSync(dir, { recursive: true })
  const caCertPath = path.join(dir, 'ca.crt')
  const caKeyPath = path.join(dir, 'ca.key')
  let ca: { cert: forge.pki.Certificate, key: forge.pki.rsa.PrivateKey }
  if (existsSync(caCertPath) && existsSync(caKeyPath)) {
    ca = {
      cert: forge.pki.certificateFromPem(readFileSync(caCertPath, 'utf8')),
      key: forge.pki.privateKeyFromPem(readFileSync(caKeyPath, 'utf8')) as forge.pki.rsa.PrivateKey
    }
  } else {
    const keys = rsaKeyPair()
    const cert = newCertificate(keys.publicKey, 3650)
    const subject = [{ name: 'commonName', value: 'Switchyard Development CA' }]
    cert.setSubject(subject)
    cert.setIssuer(subject)
    cert.setExtensions([
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' }
    ])
    cert.sign(keys.privateKey, forge.md.sha256.create())
    ca = { cert, key: keys.privateKey }
    writePrivate(caKeyPath, forge.pki.privateKeyToPem(keys.privateKey))
    writeFileSync(caCertPath, forge.pki.certificateToPem(cert))
  }

  const keys = rsaKeyPair()
  const cert = newCertificate(keys.publicKey, 825)
  cert.setSubject([{ name: 'commonName', value: 'localhost' }])
  cert.setIssuer(ca.cert.subject.attributes)
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] }
  ])
  cert.sign(ca.key, forge.md.sha256.create())
  writePrivate(path.join(dir, 'server.key'), forge.pki.privateKeyToPem(keys.privateKey))
  writeFileSync(path.join(dir, 'server.crt'), forge.pki.certificateToPem(cert))
  return caCertPath
}

/**
 * Issues a client certificate with common name `commonName`, signed by the
 * development CA in `dir` (made by generateDevCertificates), for mutual TLS.
 * Writes `<commonName>.crt` and `<commonName>.key` into `dir`; returns their paths.
 */
export function generateClientCertificate (dir: string, commonName: string): { cert: string, key: string } {
  const ca = {
    cert: forge.pki.certificateFromPem(readFileSync(path.join(dir, 'ca.crt'), 'utf8')),
    key: forge.pki.privateKeyFromPem(readFileSync(path.join(dir, 'ca.key'), 'utf8')) as forge.pki.rsa.PrivateKey
  }
  const keys = rsaKeyPair()
  const cert = newCertificate(keys.publicKey, 825)
  cert.setSubject([{ name: 'commonName', value: commonName }])
  cert.setIssuer(ca.cert.subject.attributes)
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true }
  ])
  cert.sign(ca.key, forge.md.sha256.create())
  const out = { cert: path.join(dir, `${commonName}.crt`), key: path.join(dir, `${commonName}.key`) }
  writePrivate(out.key, forge.pki.privateKeyToPem(keys.privateKey))
  writeFileSync(out.cert, forge.pki.certificateToPem(cert))
  return out
}

// Node's native generator is ~100x faster than forge's pure-JS one.
function rsaKeyPair (): { publicKey: forge.pki.rsa.PublicKey, privateKey: forge.pki.rsa.PrivateKey } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
  })
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
    privateKey: forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey
  }
}

function newCertificate (publicKey: forge.pki.rsa.PublicKey, days: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate()
  cert.publicKey = publicKey
  // positive serial: a leading 0x00 byte would be dropped, clear the top bit instead
  const serial = randomBytes(16)
  serial[0] = serial[0]! & 0x7f
  cert.serialNumber = serial.toString('hex')
  cert.validity.notBefore = new Date(Date.now() - 60_000)
  cert.validity.notAfter = new Date(Date.now() + days * 86_400_000)
  return cert
}

function writePrivate (file: string, pem: string): void {
  writeFileSync(file, pem, { mode: 0o600 })
  chmodSync(file, 0o600)
}
