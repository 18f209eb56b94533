import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import path from 'node:path'
import tls from 'node:tls'
import { describe, expect, test } from 'vitest'
import { ConfigError, createBroker } from '../../src/index.js'
import { generateClientCertificate } from '../../src/listeners/certs.js'
import { startBroker, tempDir, testCerts } from '../helpers/broker.js'
import { connect } from '../helpers/client.js'
import { runCli } from '../helpers/cli.js'

const MISMATCH = 'listeners[1].key: certs/b.key does not match listeners[1].cert (certs/a.crt); give the private key that certificate was issued for, or the certificate issued for this key'

/** A config directory holding certs/a.crt with its own key certs/a.key, and certs/b.key, a key of another certificate. */
function certsDir (): string {
  const dir = tempDir()
  const { cert, key, dir: certDir } = testCerts()
  mkdirSync(path.join(dir, 'certs'))
  copyFileSync(cert, path.join(dir, 'certs/a.crt'))
  copyFileSync(key, path.join(dir, 'certs/a.key'))
  copyFileSync(generateClientCertificate(certDir, 'stranger').key, path.join(dir, 'certs/b.key'))
  return dir
}

const withTls = (key: string) => ({
  listeners: [{ type: 'tcp' as const, port: 0 }, { type: 'tls' as const, port: 0, cert: 'certs/a.crt', key }],
  persistence: { type: 'memory' as const },
  log: { level: 'silent' as const }
})

async function servedFingerprint (port: number): Promise<string> {
  const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false })
  await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  const fingerprint = socket.getPeerCertificate().fingerprint256
  socket.destroy()
  return fingerprint
}

describe('TLS material that cannot be used is a ConfigError with ERR_TLS, naming the key and the files', () => {
  test('a key that does not match its certificate fails the start, before anything is bound', async () => {
    const dir = certsDir()
    const err = await createBroker(withTls('certs/b.key'), { baseDir: dir }).then(() => undefined, (e: unknown) => e)
    expect(err).toBeInstanceOf(ConfigError)
    expect(err).toMatchObject({ code: 'ERR_TLS', problems: [MISMATCH] })
  })

  test('a file that is not PEM at all is named too, every listener in one error', async () => {
    const dir = certsDir()
    writeFileSync(path.join(dir, 'certs/junk.key'), 'not a key')
    const config = withTls('certs/b.key')
    const err = await createBroker({ ...config, listeners: [...config.listeners, { type: 'wss', port: 0, cert: 'certs/a.crt', key: 'certs/junk.key' }] }, { baseDir: dir })
      .then(() => undefined, (e: unknown) => e) as ConfigError
    expect(err.code).toBe('ERR_TLS')
    expect(err.problems).toHaveLength(2)
    expect(err.problems[0]).toBe(MISMATCH)
    expect(err.problems[1]).toMatch(/^listeners\[2\]\.key: certs\/junk\.key is not a usable PEM private key \(/)
  })

  test('the CLI exits 1 and prints the code and the problem', async () => {
    const dir = certsDir()
    writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify(withTls('certs/b.key')))
    const result = await runCli(['start'], dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('switchyard: ERR_TLS: invalid configuration:')
    expect(result.stderr).toContain(MISMATCH)
    expect(result.stderr).not.toContain('ERR_OSSL')
  })

  test('switchyard check reports it too, without starting', async () => {
    const dir = certsDir()
    writeFileSync(path.join(dir, 'switchyard.json'), JSON.stringify(withTls('certs/b.key')))
    const result = await runCli(['check'], dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`switchyard: ERR_TLS: invalid configuration:\n  ${MISMATCH}\n`)
    expect(result.stdout).toBe('')
  })

  test('on reload (SIGHUP), a mismatched key is reported and the listener keeps its certificate', async () => {
    const dir = certsDir()
    const broker = await startBroker(withTls('certs/a.key'), { baseDir: dir })
    const port = broker.listeners[1]!.port
    const served = new X509Certificate(readFileSync(path.join(dir, 'certs/a.crt'))).fingerprint256
    expect(await servedFingerprint(port)).toBe(served)

    copyFileSync(path.join(dir, 'certs/b.key'), path.join(dir, 'certs/a.key'))
    expect(await broker.reload()).toEqual({
      ok: false,
      problems: [MISMATCH.replace('certs/b.key does', 'certs/a.key does')]
    })
    expect(await servedFingerprint(port)).toBe(served)
    expect((await connect(`mqtts://127.0.0.1:${port}`)).connected).toBe(true)
  })
})
