// Types for bench/churn.js, for test/adversarial/churn.test.ts.
export interface ChurnOptions {
  broker?: 'switchyard-level' | 'switchyard-memory' | 'aedes-level' | 'aedes-memory'
  cycles?: number
  concurrency?: number
  settle?: number
  ungraceful?: number
  wills?: number
  persistent?: number
  persistentPool?: number
  retained?: number
  timeout?: number
  healthz?: number
  gc?: boolean
  mallocStats?: boolean
  keep?: boolean
  env?: Record<string, string>
  config?: Record<string, unknown>
  entry?: string
  log?: (line: string) => void
}

export interface ChurnResult {
  broker: string
  cycles: number
  errors: number
  churnSeconds: number
  settleSeconds: number
  env: Record<string, string>
  rssStart: number
  rssPeak: number
  rssAfterChurn: number
  rssSettled: number
  rssGrowth: number
  /** With gc: RSS after the settle and a full GC. */
  rssAfterGc: number
  heapUsed: number
  heapTotal: number
  external: number
  dbBytes: number
  keys?: Record<string, number>
  malloc?: { systemBytes: number, inUseBytes: number, arenas: number, trimmed: number }
}

export const DEFAULTS: Required<Omit<ChurnOptions, 'broker'>> & { broker: string }
export function runChurn (options?: ChurnOptions): Promise<ChurnResult>
export function format (result: ChurnResult): string
