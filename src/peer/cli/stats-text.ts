import type { NumericSummary, StatsResult } from '../../learning/statistics.ts'

/** Descriptive statistics as text, for `simulate --stats` and `epimesh stats`. */
const figure = (value: number | null | undefined, digits = 4): string => value === null || value === undefined ? '-' : Number.isInteger(value) ? String(value) : value.toPrecision(digits)

/** The statistics as text: one line per feature, the correlations, the information values and the cross-tables. */
export function printStats (stats: StatsResult, write: (line: string) => void): void {
  write(`${stats.rows} rows in ${stats.peers} regions; counts below ${stats.minimum} suppressed (-)`)
  if (stats.outcome !== null) write(`outcome ${stats.outcome.name}: ${figure(stats.outcome.positives)} positive, ${figure(stats.outcome.negatives)} negative, ${figure(stats.outcome.missing)} missing`)
  write('')
  write(`${'feature'.padEnd(24)} ${'count'.padStart(7)} ${'missing'.padStart(7)} ${'mean'.padStart(10)} ${'sd'.padStart(10)} ${'p5'.padStart(10)} ${'median'.padStart(10)} ${'p95'.padStart(10)}${stats.iv === null ? '' : `  ${'IV'.padStart(8)}`}`)
  for (const [name, summary] of Object.entries(stats.features)) {
    const q = (summary as NumericSummary).quantiles
    const iv = stats.iv === null ? '' : `  ${figure(stats.iv[name]).padStart(8)}`
    write(`${name.slice(0, 24).padEnd(24)} ${figure(summary.count).padStart(7)} ${figure(summary.missing).padStart(7)} ${figure(summary.mean, 6).padStart(10)} ${figure(summary.sd, 6).padStart(10)} ${figure(q?.p5, 6).padStart(10)} ${figure(q?.p50, 6).padStart(10)} ${figure(q?.p95, 6).padStart(10)}${iv}`)
    if (summary.type === 'categorical') write(`${''.padEnd(26)}${Object.entries(summary.levels).map(([level, count]) => `${level}: ${figure(count)}`).join(', ')}`)
  }
  if (stats.correlation.names.length > 1) {
    write('')
    write('correlations (pairwise-complete)')
    const width = Math.min(12, Math.max(7, ...stats.correlation.names.map((name) => name.length + 1)))
    write(`${''.padEnd(width)}${stats.correlation.names.map((name) => name.slice(0, width - 1).padStart(width)).join('')}`)
    stats.correlation.matrix.forEach((row, index) => write(`${(stats.correlation.names[index] as string).slice(0, width - 1).padEnd(width)}${row.map((value) => (value === null ? '-' : value.toFixed(3)).padStart(width)).join('')}`))
  }
  for (const [name, table] of Object.entries(stats.crossTables ?? {})) {
    write('')
    write(`${name} x outcome: ${table.levels.map((level, index) => `${level} ${figure(table.negatives[index])}/${figure(table.positives[index])}`).join(', ')} (negative/positive); chi-square ${figure(table.chiSquare)} on ${table.df} df, p ${figure(table.pValue, 3)}`)
  }
}
