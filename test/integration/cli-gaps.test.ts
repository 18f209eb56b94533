import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { BIN, runCli } from '../helpers/cli.js'

describe('command-line gaps a new user met', () => {
  test("'switchyard help' works like --help, and 'help passwd' like 'passwd --help'", async () => {
    const dir = tempDir()
    const help = await runCli(['help'], dir)
    expect(help).toEqual({ code: 0, stdout: (await runCli(['--help'], dir)).stdout, stderr: '' })
    const passwd = await runCli(['help', 'passwd'], dir)
    expect(passwd).toEqual({ code: 0, stdout: (await runCli(['passwd', '--help'], dir)).stdout, stderr: '' })
  })

  test("the README's command-line section names every command of --help", async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const section = readme.split('\n## Command line\n')[1]!.split('\n## ')[0]!
    const help = (await runCli(['--help'], tempDir())).stdout
    const commands = help.split('Commands:\n')[1]!.split('\n\n')[0]!.split('\n').map(l => l.trim().split(/\s{2,}/)[0]!.split(' ').filter(w => !w.startsWith('<') && !w.startsWith('-') && !w.startsWith('[') && w !== '...').join(' '))
    expect(commands).toEqual(expect.arrayContaining(['start', 'check', 'rule test', 'passwd', 'help']))
    for (const command of commands) expect(section.includes(`switchyard ${command}`) || section.includes(`switchyard [${command}]`), command).toBe(true)
  })

  test('passwd -b on a missing file says to use -c, and writes nothing', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'passwords')
    const result = await runCli(['passwd', '-b', file, 'alice', 's3cret'], dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toBe(`switchyard passwd: ${file} does not exist; add -c to create it\n`)
    expect(existsSync(file)).toBe(false)
  })

  test('passwd prompts on stderr when stdin is not a terminal, one line at a time', async () => {
    const dir = tempDir()
    const file = path.join(dir, 'passwords')
    const p = spawn(BIN, ['passwd', '-c', file, 'alice'], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] })
    let stderr = ''
    const waitFor = (text: string) => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${JSON.stringify(text)} on stderr; got ${JSON.stringify(stderr)}`)), 5000)
      const check = () => { if (stderr.includes(text)) { clearTimeout(timer); p.stderr.off('data', check); resolve() } }
      p.stderr.on('data', d => { stderr += d; check() })
      check()
    })
    const exited = new Promise(resolve => p.on('close', resolve))
    await waitFor('Password: ')
    p.stdin.write('s3cret\n')
    await waitFor('Reenter password: ')
    p.stdin.end('s3cret\n')
    expect(await exited).toBe(0)
    expect(readFileSync(file, 'utf8')).toMatch(/^alice:\$7\$/)
  })
})
