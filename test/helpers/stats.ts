import { readDataset } from '../../src/peer/data/dataset.ts'
import type { StatsFeature, StatsRequest, StatsResult } from '../../src/learning/statistics.ts'
import { fixture } from './data.ts'

/** The three data sets of the statistics tests: their numeric features, factors and binary outcome. */
export const STATS_DATASETS = {
  infert: { file: 'infert.csv', numeric: ['age', 'parity', 'induced', 'spontaneous'], factors: ['education'], outcome: 'case' },
  wnv: { file: 'wnv.csv', numeric: ['age'], factors: ['sex', 'syndrome'], outcome: 'death' },
  breast_cancer: { file: 'breast_cancer.csv', numeric: null, factors: [], outcome: 'malignant' }
} as const

export async function statsDataset (name: keyof typeof STATS_DATASETS, options: { bins?: number, minimum?: number } = {}): Promise<{ rows: Array<Record<string, unknown>>, request: StatsRequest }> {
  const spec = STATS_DATASETS[name]
  const dataset = await readDataset(fixture(spec.file))
  const numeric = spec.numeric ?? dataset.columns.filter((column) => column !== spec.outcome)
  const features: StatsFeature[] = [
    ...numeric.map((feature): StatsFeature => ({ name: feature, type: 'numeric' })),
    ...spec.factors.map((feature): StatsFeature => ({ name: feature, type: 'categorical', levels: [...new Set(dataset.rows.map((row) => row[feature]).filter((value) => value !== null).map(String))].sort() }))
  ]
  return { rows: dataset.rows, request: { features, outcome: spec.outcome, bins: options.bins ?? 10, minimum: options.minimum ?? 5 } }
}

const missing = (cell: unknown): boolean => cell === null || cell === undefined || cell === ''
const outcomeOf = (cell: unknown): number | null => missing(cell) ? null : cell === 1 || cell === '1' || String(cell).toLowerCase() === 'yes' ? 1 : 0

/**
 * What an attacker derives from a published result by subtraction: for each feature, every relation
 * between its published figures and the cells behind them (a total is the sum of its parts) with one
 * unknown left gives that unknown, repeatedly. Returns each derived cell with its true value from the
 * rows, so that a test can check that no small one is among them.
 */
export function derivedCells (rows: ReadonlyArray<Record<string, unknown>>, request: StatsRequest, stats: StatsResult): Array<{ feature: string, cell: string, value: number }> {
  const out: Array<{ feature: string, cell: string, value: number }> = []
  const outcome = request.outcome
  const classes = outcome === null ? ['all'] : ['0', '1', 'NA']
  const classOf = (row: Record<string, unknown>): string => outcome === null ? 'all' : String(outcomeOf(row[outcome]) ?? 'NA')
  for (const feature of request.features) {
    const truth = new Map<string, number>()
    const count = (cell: string): void => { truth.set(cell, (truth.get(cell) ?? 0) + 1) }
    const known = new Map<string, number>()
    const relations: Array<{ total: string, parts: string[] }> = []
    const publish = (cell: string, value: number | null | undefined): void => { if (value !== null && value !== undefined) known.set(cell, value) }
    publish('rows', stats.rows)
    const summary = stats.features[feature.name]!
    if (stats.outcome !== null) {
      publish('class:0', stats.outcome.negatives)
      publish('class:1', stats.outcome.positives)
      publish('class:NA', stats.outcome.missing)
    }
    if (feature.type === 'categorical') {
      const columns = [...feature.levels, 'NA']
      for (const row of rows) count(`c:${missing(row[feature.name]) ? 'NA' : String(row[feature.name])}:${classOf(row)}`)
      for (const column of columns) relations.push({ total: `level:${column}`, parts: classes.map((cls) => `c:${column}:${cls}`) })
      relations.push({ total: 'rows', parts: columns.map((column) => `level:${column}`) })
      if (outcome !== null) for (const cls of classes) relations.push({ total: `class:${cls}`, parts: columns.map((column) => `c:${column}:${cls}`) })
      relations.push({ total: 'count', parts: feature.levels.map((level) => `level:${level}`) })
      publish('count', summary.count)
      publish('level:NA', summary.missing)
      if (summary.type === 'categorical') for (const level of feature.levels) publish(`level:${level}`, summary.levels[level])
      const cross = stats.crossTables?.[feature.name]
      cross?.levels.forEach((level, index) => { publish(`c:${level}:0`, cross.negatives[index]); publish(`c:${level}:1`, cross.positives[index]) })
      stats.woe?.[feature.name]?.forEach((bin, index) => {
        const members = [...(bin.levels ?? []), ...(bin.missing ? ['NA'] : [])]
        relations.push({ total: `woe:${index}:1`, parts: members.map((member) => `c:${member}:1`) })
        relations.push({ total: `woe:${index}:0`, parts: members.map((member) => `c:${member}:0`) })
        publish(`woe:${index}:1`, bin.events)
        publish(`woe:${index}:0`, bin.nonEvents)
      })
    } else {
      for (const row of rows) count(`${missing(row[feature.name]) ? 'm' : 'v'}:${classOf(row)}`)
      relations.push({ total: 'count', parts: classes.map((cls) => `v:${cls}`) })
      relations.push({ total: 'missing', parts: classes.map((cls) => `m:${cls}`) })
      relations.push({ total: 'rows', parts: ['count', 'missing'] })
      if (outcome !== null) for (const cls of classes) relations.push({ total: `class:${cls}`, parts: [`v:${cls}`, `m:${cls}`] })
      publish('count', summary.count)
      publish('missing', summary.missing)
      const bins = stats.woe?.[feature.name] ?? []
      for (const cls of bins.length === 0 ? [] : ['0', '1']) {
        // bins of values only; the last bin of values with the missing ones (its lower end set); the missing ones alone
        const pure = bins.flatMap((bin, index) => bin.missing ? [] : [`woe:${index}:${cls}`])
        const mixed = bins.findIndex((bin) => bin.missing && bin.lower !== null)
        const only = bins.findIndex((bin) => bin.missing && bin.lower === null)
        relations.push({ total: `v:${cls}`, parts: [...pure, ...(mixed >= 0 ? [`x:${cls}`] : [])] })
        if (mixed >= 0) relations.push({ total: `woe:${mixed}:${cls}`, parts: [`x:${cls}`, `m:${cls}`] })
        if (only >= 0) relations.push({ total: `woe:${only}:${cls}`, parts: [`m:${cls}`] })
        if (mixed < 0 && only < 0) known.set(`m:${cls}`, 0)
      }
      bins.forEach((bin, index) => { publish(`woe:${index}:1`, bin.events); publish(`woe:${index}:0`, bin.nonEvents) })
    }
    for (let changed = true; changed;) {
      changed = false
      for (const { total, parts } of relations) {
        const unknown = [total, ...parts].filter((cell) => !known.has(cell))
        if (unknown.length !== 1) continue
        const cell = unknown[0]!
        const sum = parts.reduce((acc, part) => acc + (part === cell ? 0 : known.get(part)!), 0)
        known.set(cell, cell === total ? sum : known.get(total)! - sum)
        changed = true
      }
    }
    for (const cell of known.keys()) if (cell.startsWith('c:') || cell.startsWith('v:') || cell.startsWith('m:')) out.push({ feature: feature.name, cell, value: truth.get(cell) ?? 0 })
    // a derivation that disagrees with the truth would mean the relations are wrong
    for (const [cell, value] of known) if ((cell.startsWith('c:') || cell.startsWith('v:') || cell.startsWith('m:')) && value !== (truth.get(cell) ?? 0)) throw new Error(`derived ${feature.name} ${cell} = ${value}, truly ${truth.get(cell) ?? 0}`)
  }
  return out
}

/** Every count the result publishes, with where it is. */
export function publishedCounts (stats: StatsResult): Array<{ where: string, value: number }> {
  const out: Array<{ where: string, value: number }> = []
  const add = (where: string, value: number | null | undefined): void => { if (value !== null && value !== undefined) out.push({ where, value }) }
  if (stats.outcome !== null) { add('outcome.count', stats.outcome.count); add('outcome.missing', stats.outcome.missing); add('outcome.positives', stats.outcome.positives); add('outcome.negatives', stats.outcome.negatives) }
  for (const [name, summary] of Object.entries(stats.features)) {
    add(`${name}.count`, summary.count)
    add(`${name}.missing`, summary.missing)
    if (summary.type === 'categorical') for (const [level, value] of Object.entries(summary.levels)) add(`${name}.levels.${level}`, value)
  }
  for (const [name, table] of Object.entries(stats.crossTables ?? {})) table.levels.forEach((level, index) => { add(`${name}.cross.${level}.0`, table.negatives[index]); add(`${name}.cross.${level}.1`, table.positives[index]) })
  for (const [name, bins] of Object.entries(stats.woe ?? {})) bins?.forEach((bin, index) => { add(`${name}.woe.${index}.events`, bin.events); add(`${name}.woe.${index}.nonEvents`, bin.nonEvents) })
  return out
}
