import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, test } from 'vitest'

/*
 * src/cli.ts is the only module that touches `process` (STYLE.md habit 10):
 * argv, env, cwd, exit, signals, the standard streams. Everything else is a
 * library that an embedder runs inside its own process. The scan parses each
 * file, so comments and strings that mention "process" do not count, and
 * `import ... from 'node:process'` or `globalThis.process` do.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Files allowed to touch `process`, each with why. */
const ALLOWED: Record<string, string> = {
  'src/cli.ts': 'the entry point: argv, cwd, streams, signals, pid file, exit codes',
  'src/rules/host-main.ts': 'the entry point of the rule host, a process of its own (forked by rules/host-process.ts): IPC with the broker, exits when the broker goes',
  'src/rules/sandbox.ts': 'runs only in the rule host process (imported by host-main.ts alone, checked below): picks the isolated-vm build by the Node ABI (process.versions.modules)'
}

function sources (dir: string): string[] {
  return readdirSync(path.join(ROOT, dir)).flatMap(name => {
    const rel = `${dir}/${name}`
    if (statSync(path.join(ROOT, rel)).isDirectory()) return sources(rel)
    return /\.(ts|js|mjs|cjs)$/.test(name) && !name.endsWith('.d.ts') ? [rel] : []
  })
}

const isProcessModule = (node: ts.Node) => ts.isStringLiteralLike(node) && (node.text === 'process' || node.text === 'node:process')
const isGlobalObject = (node: ts.Node) => ts.isIdentifier(node) && (node.text === 'globalThis' || node.text === 'global')

/** Each place in `code` that refers to the global `process`, as `line: text`. */
function processReferences (code: string, file = 'x.ts'): string[] {
  const source = ts.createSourceFile(file, code, ts.ScriptTarget.Latest, true)
  const found: string[] = []
  const report = (node: ts.Node) => {
    const { line } = source.getLineAndCharacterOfPosition(node.getStart(source))
    found.push(`${line + 1}: ${code.split('\n')[line]!.trim()}`)
  }
  const visit = (node: ts.Node): void => {
    const parent = node.parent
    if (ts.isIdentifier(node) && node.text === 'process') {
      // `x.process` and `{ process: ... }` are some other object's property, except on globalThis.
      const member = parent !== undefined && ((ts.isPropertyAccessExpression(parent) && parent.name === node) ||
        ((ts.isPropertyAssignment(parent) || ts.isPropertySignature(parent) || ts.isPropertyDeclaration(parent) || ts.isMethodDeclaration(parent)) && parent.name === node))
      if (!member || (ts.isPropertyAccessExpression(parent) && isGlobalObject(parent.expression))) report(node)
    } else if (isProcessModule(node) && parent !== undefined) {
      const imported = ((ts.isImportDeclaration(parent) || ts.isExportDeclaration(parent)) && parent.moduleSpecifier === node) ||
        (ts.isCallExpression(parent) && (parent.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(parent.expression) && parent.expression.text === 'require'))) ||
        (ts.isElementAccessExpression(parent) && isGlobalObject(parent.expression))
      if (imported) report(node)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

describe('only src/cli.ts touches process', () => {
  test('the scan finds every way to reach process, and nothing else', () => {
    const code = [
      '// process.exit(1) in a comment',
      "const s = 'process.argv in a string'",
      'child.process.kill()',
      'const o = { process: 1 }',
      'process.exit(1)',
      "import { argv } from 'node:process'",
      "import p from 'process'",
      'globalThis.process.env.X',
      "global['process'].cwd()",
      "const q = await import('node:process')",
      'const { env } = process'
    ].join('\n')
    expect(processReferences(code).map(r => Number(r.split(':')[0]))).toEqual([5, 6, 7, 8, 9, 10, 11])
  })

  test('no file under src/ but the allowed ones refers to the global process', () => {
    const offenders = sources('src').filter(f => !(f in ALLOWED)).flatMap(f => processReferences(readFileSync(path.join(ROOT, f), 'utf8'), f).map(r => `${f}:${r}`))
    expect(offenders).toEqual([])
  })

  test('each exception still exists and still needs to be one', () => {
    for (const file of Object.keys(ALLOWED)) {
      expect(processReferences(readFileSync(path.join(ROOT, file), 'utf8'), file), file).not.toEqual([])
    }
  })

  test('sandbox.ts is loaded by the rule host process only', () => {
    const importers = sources('src').filter(f => /\/sandbox\.js['"]/.test(readFileSync(path.join(ROOT, f), 'utf8')))
    expect(importers).toEqual(['src/rules/host-main.ts'])
  })
})
