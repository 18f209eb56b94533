// Downlink and two-way RPC, from the ThingsBoard MQTT integration tutorial.
//
// An application sends an RPC request for device SN-001 on
//   devices/SN-001/rpc/request/<requestId>  {"method":"setValue","params":"42"}
// One-way (the default): the device gets {"value":42} on
//   tb/mqtt-integration-tutorial/sensors/SN-001/rx
// A request without params fails (counted, logged), as in the tutorial.
// Two-way ("twoway": true in the request): it goes to .../rx/twoway, and the
// device's reply on .../rx/response ({"rpcReceived":"OK"}) comes back to the
// application on devices/SN-001/rpc/response/<requestId>.
//
// The device's reply carries no request id, so the rule remembers, per
// device, the requests awaiting a reply: module-level state lives as long
// as the rule stays loaded. A reply with MQTT 5 Correlation Data answers a
// call of mqtt5-rpc.js, which correlates natively, and is left to it.
export const topics = [
  'devices/+/rpc/request/+',
  'tb/mqtt-integration-tutorial/sensors/+/rx/response'
]
export const qos = 1

const awaiting = new Map() // device -> request ids, oldest first
const MAX_AWAITING = 100

export function convert (msg) {
  const levels = msg.topic.split('/')
  if (levels[0] === 'devices') return request(levels[1], levels[4], JSON.parse(msg.payload))
  if (msg.properties.correlationData !== undefined) return null // mqtt5-rpc.js's
  return response(levels[3], msg.payload)
}

function request (device, requestId, rpc) {
  // As the tutorial's downlink converter, parseInt(msg.params.replace(...)),
  // a request without params fails: the device gets nothing, not {}.
  if (rpc.params === undefined || rpc.params === null) throw new Error(`RPC request ${requestId} for ${device} has no params; nothing was sent to the device`)
  // ThingsBoard's knob sends params as a quoted number: "42"
  const value = typeof rpc.params === 'string' ? parseInt(rpc.params.replace(/"/g, ''), 10) : rpc.params
  const base = `tb/mqtt-integration-tutorial/sensors/${device}/rx`
  if (!rpc.twoway) return { topic: base, payload: { value } }
  const queue = awaiting.get(device) ?? []
  queue.push(requestId)
  if (queue.length > MAX_AWAITING) queue.shift() // a device that never answers must not grow this forever
  awaiting.set(device, queue)
  return { topic: `${base}/twoway`, payload: { value } }
}

function response (device, payload) {
  const requestId = awaiting.get(device)?.shift()
  if (requestId === undefined) {
    console.warn(`reply from ${device} with no request awaiting it: ${payload}`)
    return null
  }
  return { topic: `devices/${device}/rpc/response/${requestId}`, payload }
}
