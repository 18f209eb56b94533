/*
 * `switchyard passwd`: mosquitto_passwd's command line over the file
 * operations of auth/passwd.ts. The password prompt comes from cli.ts.
 */
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { deleteUser, hashFile, setPassword, usernameProblem } from '../auth/passwd.js'
import { PASSWD_HELP } from './help.js'
import type { Output, Prompt } from './io.js'

export async function runPasswd (argv: readonly string[], io: Output, prompt: Prompt): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: [...argv], allowPositionals: true, options: { c: { type: 'boolean', short: 'c' }, b: { type: 'boolean', short: 'b' }, D: { type: 'boolean', short: 'D' }, U: { type: 'boolean', short: 'U' }, help: { type: 'boolean', short: 'h' } } })
  } catch (err) {
    io.err(`switchyard passwd: ${(err as Error).message}\n${PASSWD_HELP}\n`)
    return 2
  }
  const { values: o, positionals: p } = parsed
  if (o.help) { io.out(PASSWD_HELP + '\n'); return 0 }
  const fail = (message: string, code = 1) => { io.err(`switchyard passwd: ${message}\n`); return code }
  const wanted = o.U ? 1 : o.D ? 2 : o.b ? 3 : 2
  if (p.length !== wanted || (o.D && (o.c || o.b)) || (o.U && (o.c || o.b || o.D))) {
    io.err(PASSWD_HELP + '\n')
    return 2
  }
  const [file, user] = p as [string, string | undefined]
  try {
    if (o.U) {
      const { hashed, alreadyHashed } = await hashFile(file)
      if (alreadyHashed > 0) io.err(`switchyard passwd: ${alreadyHashed} line(s) were already hashed and are unchanged\n`)
      io.out(`hashed ${hashed} password(s) in ${file}\n`)
      return 0
    }
    const problem = usernameProblem(user!)
    if (problem) return fail(problem)
    if (!o.c && !existsSync(file)) return fail(`${file} does not exist${o.D ? '' : '; add -c to create it'}`)
    if (o.D) return (await deleteUser(file, user!)) ? 0 : fail(`user ${user} not found in ${file}`)
    const password = o.b ? p[2]! : await promptTwice(prompt)
    if (password === undefined) return fail('the passwords do not match')
    if (password === '') return fail('the password is empty')
    await setPassword(file, user!, password, o.c === true)
    return 0
  } catch (err) {
    return fail((err as Error).message)
  }
}

/** Asks twice, as mosquitto_passwd does; undefined when the two differ. */
async function promptTwice (prompt: Prompt): Promise<string | undefined> {
  const first = await prompt('Password: ')
  const second = await prompt('Reenter password: ')
  return first === second ? first : undefined
}
