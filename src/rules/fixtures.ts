/*
 * `<name>.test.json`, the fixtures of `switchyard rule test --all`, validated
 * like the config: one strict schema, and every problem named with its key
 * and the fix, so a misspelt key is never read as "expect nothing".
 */
import { z } from 'zod'
import { closest } from '../suggest.js'

const qos = z.union([z.literal(0), z.literal(1), z.literal(2)])
const hex = z.string().regex(/^([0-9a-fA-F]{2})*$/, 'must be an even number of hex digits')

// MQTT 5 properties, in inputs and expected outputs: correlation data as
// text (UTF-8) or hex, as payloads. What MQTT can carry (a responseTopic
// without wildcards...) is checked when the case runs (src/properties.ts).
const properties = z.strictObject({
  userProperties: z.record(z.string(), z.union([z.string(), z.array(z.string()).min(1)])).optional(),
  contentType: z.string().optional(),
  responseTopic: z.string().min(1).optional(),
  correlationData: z.string().optional(),
  correlationDataHex: hex.optional(),
  messageExpiryInterval: z.number().int().min(0).max(0xFFFFFFFF).optional(),
  payloadFormatIndicator: z.boolean().optional()
})

const input = z.strictObject({
  topic: z.string().min(1),
  payload: z.string().optional(),
  payloadHex: hex.optional(),
  clientId: z.string().nullable().optional(),
  username: z.string().nullable().optional(),
  qos: qos.optional(),
  retain: z.boolean().optional(),
  properties: properties.optional()
})

const expected = z.strictObject({
  topic: z.string().min(1),
  payload: z.unknown().optional(),
  payloadHex: hex.optional(),
  qos: qos.optional(),
  retain: z.boolean().optional(),
  properties: properties.optional()
})

const testCase = z.strictObject({
  name: z.string().optional(),
  input,
  expect: z.array(expected).optional(),
  expectError: z.string().min(1).optional()
})

const fixture = z.strictObject({ cases: z.array(testCase).min(1) })

export type FixtureCase = z.output<typeof testCase>

// The keys allowed where an unknown key was found, for "did you mean".
const KEYS = {
  fixture: Object.keys(fixture.shape),
  case: Object.keys(testCase.shape),
  input: Object.keys(input.shape),
  expect: Object.keys(expected.shape),
  properties: Object.keys(properties.shape)
}

/** Parses a fixture file's text; `problems` are `key: what is wrong; how to fix`, one per line. */
export function parseFixture (text: string): { cases: FixtureCase[] } | { problems: string[] } {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    return { problems: [`not valid JSON: ${(err as Error).message}`] }
  }
  const result = fixture.safeParse(json, { reportInput: true })
  if (!result.success) {
    const issues = result.error.issues
    // A misspelt key also makes the real one missing: say it once, as the typo.
    const guessed = new Set<string>()
    const problems = issues.flatMap(issue => issue.code === 'unrecognized_keys' ? issue.keys.map(key => unknownKey(issue.path, key, guessed)) : [])
    problems.push(...issues.filter(i => i.code !== 'unrecognized_keys' && !guessed.has(formatPath(i.path))).map(describeIssue))
    return { problems }
  }
  const problems: string[] = []
  result.data.cases.forEach((c, i) => {
    if (c.input.payload !== undefined && c.input.payloadHex !== undefined) problems.push(`cases[${i}].input: give "payload" or "payloadHex", not both`)
    if (c.input.payload === undefined && c.input.payloadHex === undefined) problems.push(`cases[${i}].input: needs "payload" (text; "" for an empty payload) or "payloadHex"`)
    if ((c.expect === undefined) === (c.expectError === undefined)) {
      problems.push(`cases[${i}]: needs "expect": [...] (the outputs; [] for none) or "expectError": "<part of the message>", ${c.expect === undefined ? 'and has neither' : 'not both'}`)
    }
    if (c.input.properties?.correlationData !== undefined && c.input.properties.correlationDataHex !== undefined) problems.push(`cases[${i}].input.properties: give "correlationData" or "correlationDataHex", not both`)
    c.expect?.forEach((e, j) => {
      if (e.payload !== undefined && e.payloadHex !== undefined) problems.push(`cases[${i}].expect[${j}]: give "payload" or "payloadHex", not both`)
      if (e.properties?.correlationData !== undefined && e.properties.correlationDataHex !== undefined) problems.push(`cases[${i}].expect[${j}].properties: give "correlationData" or "correlationDataHex", not both`)
    })
  })
  return problems.length > 0 ? { problems } : { cases: result.data.cases }
}

function unknownKey (at: readonly PropertyKey[], key: string, guessed: Set<string>): string {
  const where = formatPath(at)
  const last = at[at.length - 1]
  const allowed = at.length === 0 ? KEYS.fixture : at.length === 2 ? KEYS.case : last === 'input' ? KEYS.input : last === 'properties' ? KEYS.properties : KEYS.expect
  const guess = closest(key, allowed)
  if (guess) guessed.add(formatPath([...at, guess]))
  const fix = guess ? `did you mean \`${guess}\`?` : `expected ${allowed.map(k => `"${k}"`).join(', ')}`
  return `${where ? `${where}.` : ''}${key}: unknown key; ${fix}`
}

function describeIssue (issue: z.core.$ZodIssue): string {
  const key = formatPath(issue.path) || '(top level)'
  if (issue.code === 'invalid_type') {
    if (issue.input === undefined) return `${key}: is required`
    return `${key}: expected ${issue.expected === 'object' && key === '(top level)' ? '{ "cases": [...] }' : issue.expected}, got ${JSON.stringify(issue.input) ?? String(issue.input)}`
  }
  const inUserProperties = issue.path.includes('userProperties')
  if (issue.code === 'too_small') {
    if (issue.origin === 'number') return `${key}: must be at least ${String(issue.minimum)}`
    if (issue.origin === 'array') return inUserProperties ? `${key}: an empty array sends nothing; leave the name out` : `${key}: needs at least one case`
    return `${key}: must not be empty`
  }
  if (issue.code === 'too_big' && issue.origin === 'number') return `${key}: must be at most ${String(issue.maximum)}`
  if (issue.code === 'invalid_union') return inUserProperties ? `${key}: must be a string or an array of strings` : `${key}: must be 0, 1 or 2`
  return `${key}: ${issue.message}`
}

function formatPath (p: readonly PropertyKey[]): string {
  return p.reduce<string>((acc, part) => typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part), '')
}
