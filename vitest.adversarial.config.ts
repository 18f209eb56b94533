import { defineConfig } from 'vitest/config'

// npm run test:adversarial: fuzzing, slowloris, connection floods, kill -9,
// churn. Minutes, not seconds, so `npm test` leaves test/adversarial out;
// .ci/run runs both. ADVERSARIAL_SEED=<n> reproduces a run (README, Development).

// One seed for the whole run, drawn here so that every test file (each in
// its own worker) uses the same one; printed so a failure can be replayed.
process.env.ADVERSARIAL_SEED ||= String(Math.floor(Math.random() * 0x100000000))
console.log(`adversarial suite: ADVERSARIAL_SEED=${process.env.ADVERSARIAL_SEED}`)

export default defineConfig({
  test: {
    include: ['test/adversarial/**/*.test.ts'],
    globalSetup: ['./test/global-setup.ts'], // builds dist/ when missing or stale (vitest.config.ts)
    execArgv: ['--no-node-snapshot'],
    testTimeout: 240_000,
    hookTimeout: 60_000,
    // One file at a time: each drives a real broker process at full load on a
    // two-core machine, and RSS bounds need the machine to themselves.
    fileParallelism: false,
    maxWorkers: 1,
    // The figures each test prints are the point: never silence them.
    silent: false,
    reporters: ['verbose', 'json'],
    // Under .vitest/ (git-ignored); .ci/run sums it with test-results.json.
    outputFile: { json: '.vitest/adversarial-results.json' }
  }
})
