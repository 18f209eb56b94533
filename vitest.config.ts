import { configDefaults, defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // builds dist/ first when it is missing or stale: the rule host and the CLI run from it
    globalSetup: ['./test/global-setup.ts'],
    // the adversarial suite takes minutes: npm run test:adversarial (vitest.adversarial.config.ts)
    exclude: [...configDefaults.exclude, 'test/adversarial/**'],
    // isolated-vm needs it in every process that loads it
    execArgv: ['--no-node-snapshot'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // two cores: keep socket-heavy files from starving each other
    maxWorkers: 2,
    // test-results.json lets .ci/run print a plain 'N passed, N failed' line
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results.json' }
  }
})
