/*
 * TypeScript rule files (`rules/<name>.ts`): their types are stripped when
 * they load, by amaro, the type stripper Node itself uses for
 * --experimental-strip-types (swc compiled to WebAssembly). In its
 * 'strip-only' mode every type annotation is replaced by spaces and nothing
 * else changes, so each line:column of the JavaScript is that of the .ts
 * file: a stack trace, a syntax error or a rule's lastErrors point into the
 * file the author wrote, with no source map to apply. What strip-only mode
 * cannot erase (enum, namespace, parameter properties: they generate code)
 * is a load error naming the place and the plain-JavaScript replacement.
 *
 * The stripped source ends with a `//# sourceURL=<name>.ts` comment (after
 * the last line, so no position moves): V8 names stack frames by it, and
 * the sandbox compiles the module under that name (sandbox.ts).
 *
 * amaro (about 21 MiB of RSS once used) is loaded on the first .ts rule, so
 * a broker without one never pays for it.
 */
import { createRequire } from 'node:module'
import path from 'node:path'

interface Amaro { transformSync(code: string, options: { mode: 'strip-only', filename?: string }): { code: string } }
interface SwcError { code: string, message: string, snippet?: string, startLine?: number, startColumn?: number }

let amaro: Amaro | undefined

/** The extensions a rule file may have. */
export const RULE_EXTENSIONS = ['.js', '.ts'] as const

/** `x.ts` (not a declaration file `x.d.ts`) is a TypeScript rule. */
export function isTypeScriptRule (file: string): boolean {
  return file.endsWith('.ts') && !file.endsWith('.d.ts')
}

const SOURCE_URL = /\n\/\/# sourceURL=([^\s]+)\s*$/

/** The file name a module source names itself by (`//# sourceURL=`), if it does. */
export function sourceUrl (source: string): string | undefined {
  return SOURCE_URL.exec(source)?.[1]
}

/**
 * A rule file's text as the sandbox runs it: a .js file as it is; a .ts file
 * with its types replaced by spaces. `error` is what makes a .ts file not
 * load, as `<name>.ts:<line>:<column>: <what>`.
 */
export function ruleModuleSource (file: string, text: string): { source: string } | { error: string } {
  if (!isTypeScriptRule(file)) return { source: text }
  const base = path.basename(file)
  let code: string
  try {
    code = loadAmaro().transformSync(text, { mode: 'strip-only', filename: base }).code
  } catch (err) {
    return { error: describe(base, err) }
  }
  // No character of the rule may follow on that line: a newline first.
  return { source: `${code}\n//# sourceURL=${base}` }
}

function loadAmaro (): Amaro {
  amaro ??= createRequire(import.meta.url)('amaro') as Amaro
  return amaro
}

// Fixes for what type stripping cannot erase: each generates JavaScript.
const HINTS: Array<[RegExp, string]> = [
  [/\benum\b/, 'use a plain object instead, e.g. const Level = { Low: 0, High: 1 } as const'],
  [/\bnamespace\b|\bmodule declaration\b/, 'use plain functions and objects at the top level instead'],
  [/parameter propert/, 'declare the field in the class body and assign it in the constructor'],
  [/decorator/i, 'decorators are not supported in rules']
]

function describe (file: string, err: unknown): string {
  const e = err as Partial<SwcError>
  if (typeof e?.code !== 'string' || typeof e.message !== 'string') return `${file}: cannot strip its types: ${(err as Error)?.message ?? String(err)}`
  // swc: lines from 1, columns from 0; stack traces count both from 1.
  const at = e.startLine === undefined ? file : `${file}:${e.startLine}:${(e.startColumn ?? 0) + 1}`
  const kind = e.code === 'InvalidSyntax' ? 'SyntaxError' : 'TypeScript that type stripping cannot remove'
  const hint = e.code === 'UnsupportedSyntax' ? HINTS.find(([re]) => re.test(e.message!))?.[1] : undefined
  const snippet = e.snippet ? `\n${e.snippet.trimEnd()}` : ''
  return `${at}: ${kind}: ${e.message}${hint ? `; ${hint}` : ''}${snippet}`
}
