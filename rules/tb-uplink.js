// Uplink, from the ThingsBoard MQTT integration tutorial: a sensor publishes
//   tb/mqtt-integration-tutorial/sensors/SN-001/temperature  {"value":25.1}
// and applications read normalized telemetry on
//   devices/SN-001/telemetry  {"temperature":25.1}
export const topics = ['tb/mqtt-integration-tutorial/sensors/+/temperature']
export const qos = 1

export function convert (msg) {
  const device = msg.topic.split('/')[3]
  const reading = JSON.parse(msg.payload)
  if (typeof reading.value !== 'number') throw new Error(`expected {"value": <number>}, got ${msg.payload}`)
  return {
    topic: `devices/${device}/telemetry`,
    payload: { temperature: reading.value }
  }
}
