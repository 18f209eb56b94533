// Preloaded into a broker under test (node --require): on SIGUSR2 it prints
// one line to stderr, `MEMPROBE {...}`, with process.memoryUsage(), after a
// full GC when node runs with --expose-gc. bench/churn.js reads it, so the
// same figures come from Switchyard and from bare Aedes.
'use strict'
const v8 = require('node:v8')
const spaces = () => Object.fromEntries(v8.getHeapSpaceStatistics().map(s => [s.space_name, s.physical_space_size]))
process.on('SIGUSR2', () => {
  const before = process.memoryUsage()
  before.spaces = spaces()
  let afterGc
  if (typeof global.gc === 'function') {
    global.gc()
    afterGc = process.memoryUsage()
    afterGc.spaces = spaces()
  }
  process.stderr.write('MEMPROBE ' + JSON.stringify({ before, afterGc }) + '\n')
})
