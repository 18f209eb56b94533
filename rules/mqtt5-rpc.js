// Two-way RPC with MQTT 5 request/response: the ThingsBoard tutorial's RPC
// (see tb-rpc.js), correlated natively instead of by a request id in the topic.
//
// An MQTT 5 application calls device SN-001 on
//   devices/SN-001/rpc/call  {"method":"setValue","params":"42"}
// with a Response Topic (where it wants the reply) and Correlation Data
// (its own bytes, to match the reply with).
//
// The device gets the tutorial's command, {"value":42}, on
//   tb/mqtt-integration-tutorial/sensors/SN-001/rx/twoway
// with that Correlation Data and the Response Topic
//   tb/mqtt-integration-tutorial/sensors/SN-001/rx/response
// An MQTT 5 device replies there with the same Correlation Data, as a
// responder does (MQTT 5.0, 4.10), and the rule answers the call: the device's
// reply goes to the application's Response Topic with the application's
// Correlation Data. A call without a Response Topic is one-way: {"value":42}
// on .../rx, as tb-rpc sends it. A call's Message Expiry Interval (what is
// left of it) goes on to the device's command.
//
// The device never learns the application's Response Topic, and only a reply
// to a call the rule made is answered, once. A reply without Correlation Data
// (an MQTT 3.1.1 device, the tutorial's simulator) is tb-rpc's.
export const topics = [
  'devices/+/rpc/call',
  'tb/mqtt-integration-tutorial/sensors/+/rx/response'
]
export const qos = 1

const awaiting = new Map() // `${device} ${correlation data as hex}` -> the call's responseTopic and correlationData
const MAX_AWAITING = 1000

export function convert (msg) {
  const levels = msg.topic.split('/')
  if (levels[0] === 'devices') return call(levels[1], JSON.parse(msg.payload), msg.properties)
  return reply(levels[3], msg)
}

function call (device, rpc, { responseTopic, correlationData, messageExpiryInterval }) {
  if (rpc.params === undefined || rpc.params === null) throw new Error(`RPC call for ${device} has no params; nothing was sent to the device`)
  // ThingsBoard's knob sends params as a quoted number: "42"
  const value = typeof rpc.params === 'string' ? parseInt(rpc.params.replace(/"/g, ''), 10) : rpc.params
  const base = `tb/mqtt-integration-tutorial/sensors/${device}/rx`
  if (responseTopic === undefined) return { topic: base, payload: { value } }
  if (correlationData === undefined) throw new Error(`two-way RPC call for ${device} has a Response Topic but no Correlation Data to match the device's reply with`)
  const key = `${device} ${hex(correlationData)}`
  if (awaiting.has(key)) throw new Error(`a call to ${device} with Correlation Data ${hex(correlationData)} already awaits its reply`)
  awaiting.set(key, { responseTopic, correlationData })
  if (awaiting.size > MAX_AWAITING) awaiting.delete(awaiting.keys().next().value) // a device that never answers must not grow this forever
  const properties = { responseTopic: `${base}/response`, correlationData }
  if (messageExpiryInterval !== undefined) properties.messageExpiryInterval = messageExpiryInterval
  return { topic: `${base}/twoway`, payload: { value }, properties }
}

function reply (device, msg) {
  const { correlationData, contentType } = msg.properties
  if (correlationData === undefined) return null // an MQTT 3.1.1 device's reply: tb-rpc's
  const key = `${device} ${hex(correlationData)}`
  const call = awaiting.get(key)
  if (call === undefined) {
    console.warn(`reply from ${device} to no call awaiting it (Correlation Data ${hex(correlationData)})`)
    return null
  }
  awaiting.delete(key)
  const properties = { correlationData: call.correlationData, userProperties: { device } }
  if (contentType !== undefined) properties.contentType = contentType
  return { topic: call.responseTopic, payload: msg.payload, properties }
}

function hex (bytes) {
  return Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('')
}
