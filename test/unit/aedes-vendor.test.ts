import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

// vendor/aedes must be exactly aedes@2.0.0-beta.1 from npm plus the patches
// in vendor/aedes-patches/: an edit that is not in a patch fails here.
it('vendor/aedes is the npm tarball plus vendor/aedes-patches, nothing else', () => {
  const script = fileURLToPath(new URL('../../scripts/aedes-vendor.mjs', import.meta.url))
  const out = execFileSync(process.execPath, [script, 'check'], { encoding: 'utf8' })
  expect(out).toMatch(/^vendor\/aedes = aedes@2\.0\.0-beta\.1 \+ \d+ patches$/m)
}, 60_000)
