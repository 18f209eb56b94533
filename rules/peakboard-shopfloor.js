// The Peakboard shop-floor feed: five stations publish a bare status code
// (100, 200 or 300) on shopfloor/station1/ ... shopfloor/station5/, and a
// production counter on shopfloor/counter/ counts up and is reset now and
// then. This rule turns the codes into named states, retained so that a
// dashboard opening later sees every station at once, and marks counter resets.
export const topics = ['shopfloor/+/', 'shopfloor/+']

const STATES = { 100: 'running', 200: 'idle', 300: 'fault' }
let lastCount = null

export function convert (msg) {
  const name = msg.topic.split('/')[1]
  const value = Number(msg.payload.trim())
  if (!Number.isFinite(value)) throw new Error(`expected a number, got ${JSON.stringify(msg.payload)}`)
  if (name === 'counter') {
    const reset = lastCount !== null && value < lastCount
    lastCount = value
    return { topic: 'factory/production/counter', payload: { count: value, reset } }
  }
  return {
    topic: `factory/stations/${name}/state`,
    payload: { station: name, code: value, state: STATES[value] ?? 'unknown' },
    retain: true
  }
}
