/* Pure checks on rule files and their outputs, shared by the host and the broker. */
import type { LoadedMeta } from './protocol.js'
import { filterProblem, topicNameProblem } from '../topics.js'

/** Returns what is wrong with a topic a rule wants to publish to, or undefined. */
export function outputTopicProblem (topic: string): string | undefined {
  const problem = topicNameProblem(topic)
  if (problem !== undefined) return problem
  if (topic.startsWith('$SYS/') || topic === '$SYS') return 'must not be under $SYS/, which belongs to the broker'
  return undefined
}

/** A rule file's name becomes a topic level in $SYS/switchyard/rules/<name>. */
export function ruleNameProblem (name: string): string | undefined {
  if (/[+#/\u0000]/.test(name)) return 'a rule file name must not contain +, # or /'
  return undefined
}

export interface Limits { timeoutMs: number, memoryLimitMb: number }

const EXPORT_TOPICS = '`export const topics = [...]`'
const EXPORT_CONVERT = '`export function convert (msg) {...}`'

/** Checks a rule module's exports; returns its metadata or every problem found. */
export function checkExports (exp: { topics: unknown, qos: unknown, limits: unknown, convertType: string, convertKind?: string, defaultType?: string }, max: Limits): { meta: LoadedMeta } | { problems: string[] } {
  const problems: string[] = []
  // `export default { topics, convert }`: one message for both.
  const defaultObject = exp.defaultType === 'object' && exp.topics === undefined && exp.convertType === 'undefined'
  if (defaultObject) {
    problems.push(`the default export is not used; export each part by name: ${EXPORT_TOPICS} and ${EXPORT_CONVERT}`)
  } else if (exp.convertType === 'undefined' && exp.defaultType === 'function') {
    problems.push(`the default export is not used; export a named function convert: ${EXPORT_CONVERT}`)
  } else if (exp.convertType !== 'function') {
    problems.push(`export function convert(msg) is missing${exp.convertType === 'undefined' ? '' : ` (convert is a ${exp.convertType})`}`)
  } else if (exp.convertKind === 'AsyncFunction' || exp.convertKind === 'AsyncGeneratorFunction') {
    problems.push('convert is an async function: it must be synchronous and return its outputs, since rules have no I/O to await (an async convert returns a Promise for every message)')
  } else if (exp.convertKind === 'GeneratorFunction') {
    problems.push('convert is a generator function: it must return its outputs (one, an array, or null), not yield them')
  }
  let topics: string[] = []
  if (exp.topics === undefined) {
    if (!defaultObject) problems.push("export const topics = ['a/+/filter'] is missing: name one or more MQTT topic filters")
  } else if (!Array.isArray(exp.topics)) {
    const example = typeof exp.topics === 'string' ? JSON.stringify([exp.topics]).replace(/"/g, "'") : "['a/+/filter']"
    problems.push(`topics must be an array of MQTT topic filters, e.g. export const topics = ${example}; got ${describe(exp.topics)}`)
  } else if (exp.topics.length === 0) {
    problems.push("topics is empty: name one or more MQTT topic filters, e.g. export const topics = ['a/+/filter']")
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

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return `a string, ${JSON.stringify(value)}`
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
