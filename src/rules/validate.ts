/* Pure checks on rule files and their outputs, shared by the host and the broker. */
import type { LoadedMeta } from './protocol.js'
import { filterProblem, MAX_TOPIC_BYTES } from '../topics.js'

/** Returns what is wrong with a topic a rule wants to publish to, or undefined. */
export function outputTopicProblem (topic: string): string | undefined {
  if (topic.includes('+') || topic.includes('#')) return 'must not contain wildcards (+ or #)'
  if (topic.includes('\u0000')) return 'must not contain the NUL character'
  if (Buffer.byteLength(topic) > MAX_TOPIC_BYTES) return 'is longer than 65535 bytes'
  if (topic.startsWith('$SYS/') || topic === '$SYS') return 'must not be under $SYS/, which belongs to the broker'
  return undefined
}

/** A rule file's name becomes a topic level in $SYS/switchyard/rules/<name>. */
export function ruleNameProblem (name: string): string | undefined {
  if (/[+#/\u0000]/.test(name)) return 'a rule file name must not contain +, # or /'
  return undefined
}

export interface Limits { timeoutMs: number, memoryLimitMb: number }

/** Checks a rule module's exports; returns its metadata or every problem found. */
export function checkExports (exp: { topics: unknown, qos: unknown, limits: unknown, convertType: string }, max: Limits): { meta: LoadedMeta } | { problems: string[] } {
  const problems: string[] = []
  if (exp.convertType !== 'function') problems.push(`export function convert(msg) is missing${exp.convertType === 'undefined' ? '' : ` (convert is a ${exp.convertType})`}`)
  let topics: string[] = []
  if (!Array.isArray(exp.topics) || exp.topics.length === 0) {
    problems.push("export const topics = ['a/+/filter'] is missing: name one or more MQTT topic filters")
  } else {
    topics = exp.topics as string[]
    exp.topics.forEach((f, i) => {
      const p = filterProblem(f)
      if (p) problems.push(`topics[${i}] ${JSON.stringify(f)}: ${p}`)
    })
  }
  if (exp.qos !== undefined && exp.qos !== 0 && exp.qos !== 1 && exp.qos !== 2) problems.push(`qos must be 0, 1 or 2; got ${JSON.stringify(exp.qos)}`)
  const limits = { ...max }
  if (exp.limits !== undefined) {
    if (exp.limits === null || typeof exp.limits !== 'object') {
      problems.push('limits must be an object { timeoutMs?, memoryLimitMb? }')
    } else {
      for (const [key, value] of Object.entries(exp.limits)) {
        if (key !== 'timeoutMs' && key !== 'memoryLimitMb') { problems.push(`limits.${key}: unknown; only timeoutMs and memoryLimitMb can be set`); continue }
        const floor = key === 'memoryLimitMb' ? 8 : 1
        if (typeof value !== 'number' || !Number.isInteger(value) || value < floor) { problems.push(`limits.${key} must be an integer >= ${floor}`); continue }
        if (value > max[key]) { problems.push(`limits.${key} ${value} is above the broker's rules.${key} ${max[key]}; a rule may only lower its limits`); continue }
        limits[key] = value
      }
    }
  }
  if (problems.length > 0) return { problems }
  return { meta: { topics, qos: exp.qos as 0 | 1 | 2 | undefined, limits } }
}
