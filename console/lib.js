/* The console's one import point for its libraries (served from node_modules by src/ops/console-static.ts). */
import { h, render, Component } from '/console/vendor/preact.mjs'
import { useState, useEffect, useRef, useCallback, useMemo } from '/console/vendor/hooks.mjs'
import htm from '/console/vendor/htm.mjs'

export const html = htm.bind(h)
export { render, Component, useState, useEffect, useRef, useCallback, useMemo }

/** Calls `fn` every `ms` while the component is mounted, and once at once. */
export function usePoll (fn, ms, deps = []) {
  useEffect(() => {
    let stopped = false
    const tick = () => { if (!stopped) fn() }
    tick()
    const timer = setInterval(tick, ms)
    return () => { stopped = true; clearInterval(timer) }
  }, deps)
}

/**
 * A form's submit handler: runs `action` with the form's page load prevented,
 * `busy` meanwhile (for the button's disabled), and `result` what it resolved
 * with, or what `failed(err)` returns if it threw (null while it runs).
 */
export function useSubmit (action, failed) {
  const [result, setResult] = useState(null)
  const [busy, setBusy] = useState(false)
  const submit = async e => {
    e.preventDefault()
    setBusy(true)
    setResult(null)
    try {
      setResult(await action())
    } catch (err) {
      setResult(failed(err))
    } finally {
      setBusy(false)
    }
  }
  return { submit, busy, result }
}
