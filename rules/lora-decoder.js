// A binary decoder, as for LoRaWAN devices that pack readings into bytes.
// A sensor publishes 5 bytes on lora/<devEUI>/up:
//   bytes 0-1  temperature, signed big-endian, in 0.1 °C
//   byte  2    relative humidity, in %
//   bytes 3-4  battery, unsigned big-endian, in mV
// e.g. 00 EB 37 0C E4 -> 23.5 °C, 55 %, 3300 mV
export const topics = ['lora/+/up']

export function convert (msg) {
  const b = msg.bytes
  if (b.length !== 5) throw new Error(`expected 5 bytes, got ${b.length}`)
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  return {
    topic: `devices/${msg.topic.split('/')[1]}/telemetry`,
    payload: {
      temperature: view.getInt16(0) / 10,
      humidity: view.getUint8(2),
      batteryMv: view.getUint16(3)
    }
  }
}
