import { describe, expect, test } from 'vitest'
import { decodeJobs, decodeResults, encodeJobs, encodeResults, type FrameJob, type FrameResult } from '../../src/rules/ipc-frames.js'

const bytes = (s: string) => new Uint8Array(Buffer.from(s))

describe('IPC frames (issue 16)', () => {
  test('jobs round-trip: text, nulls, UTF-8, empty and large payloads, several rules', () => {
    const big = new Uint8Array(100_000).map((_, i) => i % 251)
    const jobs: FrameJob[] = [
      { id: 1, rule: 'uplink', msg: { topic: 'a/b', bytes: bytes('{"v":"é"}'), qos: 0, retain: false, clientId: 'c1', username: null, timestamp: 1700000000123 } },
      { id: 2 ** 40 + 7, rule: 'règle', msg: { topic: 'é/ü/日本', bytes: new Uint8Array(0), qos: 2, retain: true, clientId: null, username: 'ünï', timestamp: 5 } },
      { id: 3, rule: 'uplink', msg: { topic: 't', bytes: big, qos: 1, retain: false, clientId: '', username: '', timestamp: 0 } }
    ]
    const back = decodeJobs(encodeJobs(jobs))
    // The host reads msg.payload, the text of the bytes, from the frame.
    expect(back).toEqual(jobs.map(j => ({ ...j, msg: { ...j.msg, payload: Buffer.from(j.msg.bytes).toString() } })))
    expect(back[1]!.msg.payload).toBe('')
    // Each payload has an ArrayBuffer of its own (it crosses into an isolate by copy).
    expect(back[2]!.msg.bytes.buffer.byteLength).toBe(100_000)
    expect(back[0]!.msg.bytes.buffer.byteLength).toBe(10)
    expect(back[0]!.msg.payload).toBe('{"v":"é"}')
  })

  test('MQTT 5 properties and fields added later cross as they are', () => {
    const msg = {
      topic: 'a', bytes: bytes('x'), qos: 1 as const, retain: false, clientId: 'c', username: null, timestamp: 1,
      properties: { contentType: 'application/json', correlationData: new Uint8Array([1, 2, 3]), userProperties: { k: ['a', 'b'] }, messageExpiryInterval: 60 },
      future: { n: 1 }
    }
    const [job] = decodeJobs(encodeJobs([{ id: 9, rule: 'r', msg }]))
    expect(job!.msg.properties).toEqual(msg.properties)
    expect((job!.msg as unknown as { future: unknown }).future).toEqual({ n: 1 })
  })

  test('results round-trip: outputs with and without qos/retain, errors, logs, extra fields', () => {
    const results: FrameResult[] = [
      {
        id: 1,
        rule: 'uplink',
        ms: 0.0123,
        result: {
          kind: 'ok',
          outputs: [
            { topic: 'devices/1/telemetry', payload: '{"temperature":21.5,"unit":"°C"}' },
            { topic: 'raw', payload: new Uint8Array([0, 255]), qos: 2, retain: true },
            { topic: 'q0', payload: '', qos: 0, retain: false, properties: { correlationData: 'abc', userProperties: { a: 'b' } } }
          ],
          logs: []
        }
      },
      { id: 2, rule: 'other', ms: 1, result: { kind: 'error', error: 'TypeError: x is undefined\n    at convert (other.js:3:7)', logs: [['log', 'hello'], ['warn', 'ü']] } },
      { id: 3, rule: 'uplink', ms: 50, result: { kind: 'timeout', error: 'exceeded timeoutMs 50', logs: [] } },
      { id: 4, rule: 'uplink', ms: 0, result: { kind: 'ok', outputs: [], logs: [] } }
    ]
    ;(results[3]!.result as unknown as { shadow: unknown }).shadow = { differing: 1 }
    const back = decodeResults(encodeResults(results))
    expect(back.map(r => [r.id, r.rule, r.ms, r.result.kind])).toEqual(results.map(r => [r.id, r.rule, r.ms, r.result.kind]))
    const ok = back[0]!.result as Extract<FrameResult['result'], { kind: 'ok' }>
    // Text stays text (rule test prints it so), bytes stay bytes.
    expect(ok.outputs[0]!.payload).toBe('{"temperature":21.5,"unit":"°C"}')
    expect(ok.outputs[0]).not.toHaveProperty('qos')
    expect(ok.outputs[0]).not.toHaveProperty('retain')
    expect(ok.outputs[1]).toMatchObject({ topic: 'raw', qos: 2, retain: true })
    expect([...(ok.outputs[1]!.payload as Uint8Array)]).toEqual([0, 255])
    expect(ok.outputs[2]).toMatchObject({ qos: 0, retain: false, properties: { correlationData: 'abc', userProperties: { a: 'b' } } })
    expect(back[1]!.result).toEqual(results[1]!.result)
    expect(back[2]!.result).toEqual(results[2]!.result)
    expect(back[3]!.result).toEqual({ kind: 'ok', outputs: [], logs: [], shadow: { differing: 1 } })
  })

  test('a conversion with more outputs than 16 bits count crosses whole', () => {
    const outputs = Array.from({ length: 70_000 }, (_, i) => ({ topic: `t/${i}`, payload: '' }))
    const [back] = decodeResults(encodeResults([{ id: 1, rule: 'r', ms: 0, result: { kind: 'ok', outputs, logs: [] } }]))
    expect((back!.result as { outputs: unknown[] }).outputs).toHaveLength(70_000)
  })

  test('an empty batch is an empty list', () => {
    expect(decodeJobs(encodeJobs([]))).toEqual([])
    expect(decodeResults(encodeResults([]))).toEqual([])
  })
})
