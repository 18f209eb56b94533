#!/usr/bin/env -S node --no-node-snapshot
// --no-node-snapshot: isolated-vm, which runs the rules sandbox, requires it.
import '../dist/cli.js'
