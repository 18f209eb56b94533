/*
 * `switchyard rule test`: one message through one rule file, or every
 * `<name>.test.json` fixture with --all, in the real sandbox (rules/tester.ts).
 */
import type { Config } from '../config.js'
import { RuleTester } from '../rules/tester.js'
import type { RuleTestOptions } from './args.js'
import { usage, type Output } from './io.js'

export async function runRuleTest (config: Config, file: string | undefined, options: RuleTestOptions, io: Output): Promise<number> {
  const tester = new RuleTester(config.rules, config.limits.maxPacketSize)
  try {
    if (options.all) {
      if (file !== undefined) return usage(io, "'rule test --all' takes no file: it runs every fixture in rules.dir")
      if (config.rules.dir === null) return usage(io, "'rule test --all' runs the fixtures in rules.dir, and rules.dir is null")
      const reports = await tester.runFixtures(config.rules.dir)
      for (const r of reports) io.out(`${r.passed ? 'ok  ' : 'FAIL'} ${r.file} > ${r.name}${r.detail ? `\n     ${r.detail}` : ''}\n`)
      const failed = reports.filter(r => !r.passed).length
      io.out(`${reports.length - failed} passed, ${failed} failed\n`)
      return failed > 0 || reports.length === 0 ? 1 : 0
    }
    if (file === undefined) return usage(io, "'rule test' needs a rule file, or --all")
    if (options.topic === undefined) return usage(io, "'rule test' needs --topic <topic>")
    if (options.payload !== undefined && options.payloadHex !== undefined) return usage(io, 'give --payload or --payload-hex, not both')
    // An empty payload is --payload '', never the absence of both.
    if (options.payload === undefined && options.payloadHex === undefined) return usage(io, "'rule test' needs --payload <text> or --payload-hex <hex> (--payload '' for an empty payload)")
    const hex = options.payloadHex
    if (hex !== undefined && !/^([0-9a-fA-F]{2})*$/.test(hex)) return usage(io, '--payload-hex needs an even number of hex digits')
    const qos = options.qos === undefined ? 0 : Number(options.qos)
    if (qos !== 0 && qos !== 1 && qos !== 2) return usage(io, '--qos must be 0, 1 or 2')
    const loaded = await tester.load(file)
    if (!loaded.ok) {
      io.err(`switchyard: ${file}: ${loaded.error}\n`)
      return 1
    }
    const outcome = await tester.run(loaded.name, {
      topic: options.topic,
      ...(hex !== undefined ? { payloadHex: hex } : { payload: String(options.payload) }),
      clientId: options.clientId ?? null,
      username: options.username ?? null,
      qos
    })
    if (!outcome.ok) {
      io.err(`switchyard: ${loaded.name}: ${outcome.error}\n`)
      return 1
    }
    io.out(JSON.stringify(outcome.outputs, null, 2) + '\n')
    return 0
  } finally {
    await tester.close()
  }
}
