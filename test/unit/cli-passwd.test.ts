import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { PASSWD_HELP } from '../../src/cli/help.js'
import type { Prompt } from '../../src/cli/io.js'
import { runPasswd } from '../../src/cli/passwd.js'
import { memoryOutput, scratchDir } from '../helpers/cli-io.js'

/** A prompt that answers from a list, and records what it was asked. */
function answers (...lines: string[]) {
  const asked: string[] = []
  const prompt = async (label: string) => { asked.push(label); return lines.shift() ?? '' }
  return { prompt, asked }
}

const noPrompt = async (): Promise<string> => { throw new Error('no prompt expected') }

async function passwd (argv: string[], prompt: Prompt = noPrompt) {
  const io = memoryOutput()
  const code = await runPasswd(argv, io, prompt)
  return { code, stdout: io.stdout, stderr: io.stderr }
}

describe('switchyard passwd, in process', () => {
  test('-c -b creates the file with a $7$ hash; -b replaces the password; -D deletes the user', async () => {
    const file = path.join(scratchDir(), 'passwords')
    expect(await passwd(['-c', '-b', file, 'alice', 'one'])).toEqual({ code: 0, stdout: '', stderr: '' })
    expect(readFileSync(file, 'utf8')).toMatch(/^alice:\$7\$\d+\$[^$]+\$[^$]+\n$/)
    const first = readFileSync(file, 'utf8')
    expect((await passwd(['-b', file, 'alice', 'two'])).code).toBe(0)
    expect(readFileSync(file, 'utf8')).not.toBe(first)
    expect((await passwd(['-D', file, 'alice'])).code).toBe(0)
    expect(readFileSync(file, 'utf8')).toBe('')
    expect(await passwd(['-D', file, 'alice'])).toEqual({ code: 1, stdout: '', stderr: `switchyard passwd: user alice not found in ${file}\n` })
  })

  test('without -b it prompts twice, and refuses two different answers or an empty one', async () => {
    const file = path.join(scratchDir(), 'passwords')
    const same = answers('s3cret', 's3cret')
    expect((await passwd(['-c', file, 'alice'], same.prompt)).code).toBe(0)
    expect(same.asked).toEqual(['Password: ', 'Reenter password: '])
    expect(await passwd([file, 'bob'], answers('a', 'b').prompt)).toEqual({ code: 1, stdout: '', stderr: 'switchyard passwd: the passwords do not match\n' })
    expect(await passwd([file, 'bob'], answers('', '').prompt)).toEqual({ code: 1, stdout: '', stderr: 'switchyard passwd: the password is empty\n' })
    expect(readFileSync(file, 'utf8')).toMatch(/^alice:\$7\$[^\n]+\n$/)
  })

  test('a missing file needs -c, and nothing is written', async () => {
    const file = path.join(scratchDir(), 'passwords')
    expect(await passwd(['-b', file, 'alice', 'x'])).toEqual({ code: 1, stdout: '', stderr: `switchyard passwd: ${file} does not exist; add -c to create it\n` })
    expect(await passwd(['-D', file, 'alice'])).toEqual({ code: 1, stdout: '', stderr: `switchyard passwd: ${file} does not exist\n` })
    expect(existsSync(file)).toBe(false)
  })

  test('-U hashes the plain-text lines and counts those already hashed', async () => {
    const file = path.join(scratchDir(), 'passwords')
    expect((await passwd(['-c', '-b', file, 'alice', 'a'])).code).toBe(0)
    writeFileSync(file, readFileSync(file, 'utf8') + '# a comment\nbob:plain\n')
    expect(await passwd(['-U', file])).toEqual({ code: 0, stdout: `hashed 1 password(s) in ${file}\n`, stderr: 'switchyard passwd: 1 line(s) were already hashed and are unchanged\n' })
    expect(readFileSync(file, 'utf8')).toMatch(/\n# a comment\nbob:\$7\$/)
  })

  test('a bad username is refused', async () => {
    const file = path.join(scratchDir(), 'passwords')
    expect(await passwd(['-c', '-b', file, 'a:b', 'x'])).toEqual({ code: 1, stdout: '', stderr: 'switchyard passwd: a username cannot contain ":"\n' })
  })

  test('--help prints the usage; wrong arguments print it on stderr and exit 2', async () => {
    expect(await passwd(['--help'])).toEqual({ code: 0, stdout: PASSWD_HELP + '\n', stderr: '' })
    expect(await passwd(['-D', '-c', 'f', 'u'])).toEqual({ code: 2, stdout: '', stderr: PASSWD_HELP + '\n' })
    expect(await passwd(['-b', 'f', 'u'])).toEqual({ code: 2, stdout: '', stderr: PASSWD_HELP + '\n' })
    const unknown = await passwd(['-x', 'f', 'u'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toMatch(/^switchyard passwd: Unknown option '-x'/)
    expect(unknown.stderr.endsWith(PASSWD_HELP + '\n')).toBe(true)
  })
})
