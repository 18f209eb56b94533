#!/usr/bin/env node
/*
 * vendor/aedes is aedes@2.0.0-beta.1 from npm plus the patches in
 * vendor/aedes-patches/, applied in file-name order. This script keeps that
 * statement true (docs/aedes-gaps.md, "The vendored Aedes"):
 *
 *   node scripts/aedes-vendor.mjs check        rebuild from the npm tarball
 *                                              and the patches; exit 1 if
 *                                              vendor/aedes differs
 *   node scripts/aedes-vendor.mjs make <name> [file ...]
 *                                              write what vendor/aedes has
 *                                              beyond the existing patches (in
 *                                              the files named, relative to
 *                                              vendor/aedes, or all) as
 *                                              vendor/aedes-patches/NNN-<name>.patch
 *
 * A patch file starts with free text (what, why, the upstream issue or PR);
 * git apply ignores everything before the first "diff --git" line.
 */
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const VENDOR = join(ROOT, 'vendor', 'aedes')
const PATCHES = join(ROOT, 'vendor', 'aedes-patches')
const UPSTREAM = 'aedes@2.0.0-beta.1'
// The files taken from the tarball; tests, docs, examples and tooling stay out.
const FILES = ['LICENSE', 'aedes.js', 'aedes.d.ts', 'package.json', 'lib', 'types/client.d.ts', 'types/instance.d.ts', 'types/packet.d.ts']

function sh (cmd, args, cwd) {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function patchFiles () {
  return existsSync(PATCHES) ? readdirSync(PATCHES).filter((f) => f.endsWith('.patch')).sort() : []
}

/** The pristine tarball's files, with every patch applied, in a fresh directory. */
function rebuild (work) {
  sh('npm', ['pack', UPSTREAM, '--silent', '--pack-destination', work], work)
  const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'))
  if (!tgz) throw new Error(`npm pack ${UPSTREAM} wrote no tarball`)
  sh('tar', ['xzf', tgz], work)
  const out = join(work, 'old')
  for (const f of FILES) cpSync(join(work, 'package', f), join(out, f), { recursive: true })
  for (const p of patchFiles()) {
    try {
      sh('git', ['apply', '-p2', '--whitespace=nowarn', join(PATCHES, p)], out)
    } catch (err) {
      throw new Error(`${p} does not apply: ${err.stderr || err.message}`)
    }
  }
  return out
}

function diff (a, b, cwd) {
  try {
    sh('git', ['diff', '--no-index', '--no-color', relative(cwd, a), relative(cwd, b)], cwd)
    return ''
  } catch (err) {
    if (err.status === 1) return err.stdout
    throw err
  }
}

const [command, name, ...only] = process.argv.slice(2)
const work = mkdtempSync(join(tmpdir(), 'aedes-vendor-'))
try {
  const rebuilt = rebuild(work)
  const current = join(work, 'new')
  mkdirSync(current)
  for (const f of FILES) cpSync(join(VENDOR, f), join(current, f), { recursive: true })
  // make with files named: the rest of the tree is taken as it was rebuilt
  if (command === 'make' && only.length > 0) {
    for (const f of FILES) rmSync(join(current, f), { recursive: true, force: true })
    cpSync(rebuilt, current, { recursive: true })
    for (const f of only) {
      if (existsSync(join(VENDOR, f))) cpSync(join(VENDOR, f), join(current, f))
      else rmSync(join(current, f), { force: true })
    }
  }
  const delta = diff(rebuilt, current, work)
  if (command === 'check') {
    if (delta) {
      process.stderr.write(`vendor/aedes differs from ${UPSTREAM} + ${patchFiles().length} patches:\n${delta}`)
      process.exit(1)
    }
    process.stdout.write(`vendor/aedes = ${UPSTREAM} + ${patchFiles().length} patches\n`)
  } else if (command === 'make' && name && /^[a-z0-9-]+$/.test(name)) {
    if (!delta) { process.stdout.write('nothing to write: vendor/aedes has no change beyond the patches\n'); process.exit(0) }
    mkdirSync(PATCHES, { recursive: true })
    const file = `${String(patchFiles().length + 1).padStart(3, '0')}-${name}.patch`
    writeFileSync(join(PATCHES, file), `${name}: TODO say what, why, and the upstream issue or PR.\n\n${delta}`)
    process.stdout.write(`wrote vendor/aedes-patches/${file}; edit its header\n`)
  } else {
    process.stderr.write('usage: node scripts/aedes-vendor.mjs check | make <name-in-kebab-case>\n')
    process.exit(2)
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}

