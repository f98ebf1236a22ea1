import { readFile } from 'node:fs/promises'
import { parse } from 'csv-parse/sync'
import { graphFromEdges, isConnected, type Graph } from '../../consensus/graph.ts'
import type { SeriesPanel } from '../../learning/forecast-panel.ts'
import { DatasetError } from './dataset.ts'

/**
 * The simulator's forecasting inputs: a wide counts file (a period column, then one column per
 * region), a population file (`region,population`, an optional `name`, other columns allowed) and an edge list (`a,b`).
 * Every problem names the file, the line and the field, and is a DatasetError (exit code 2).
 */
interface CsvRecord { record: string[], line: number }

async function readCsv (path: string, what: string): Promise<CsvRecord[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new DatasetError(`cannot read the ${what} ${path}: ${(error as Error).message}`, { cause: error })
  }
  try {
    const records = parse(text, { bom: true, info: true, skip_empty_lines: true, relax_column_count: true }) as unknown as Array<{ record: string[], info: { lines: number } }>
    return records.map(({ record, info }) => ({ record: record.map((cell) => cell.trim()), line: info.lines }))
  } catch (error) {
    const lines = (error as { lines?: number }).lines
    throw new DatasetError(`${path}${lines === undefined ? '' : `, line ${lines}`}: ${(error as Error).message}`, { cause: error })
  }
}

export interface CountsFile {
  /** the period labels (first column), one per row */
  periods: string[]
  regions: string[]
  /** counts[r][t] */
  counts: Float64Array[]
}

/** A wide counts file: header `period,regionA,regionB,...`, one row per period, non-negative integer counts. */
export async function readCountsFile (path: string): Promise<CountsFile> {
  const records = await readCsv(path, 'counts file')
  const header = records[0]
  if (header === undefined) throw new DatasetError(`${path}: the file is empty`)
  const regions = header.record.slice(1)
  if (regions.length === 0) throw new DatasetError(`${path}, line ${header.line}: the header needs a period column and at least one region column`)
  regions.forEach((region, index) => {
    if (region === '') throw new DatasetError(`${path}, line ${header.line}, column ${index + 2}: a region column has no name`)
    if (regions.indexOf(region) !== index) throw new DatasetError(`${path}, line ${header.line}: region "${region}" appears twice`)
  })
  const rows = records.slice(1)
  if (rows.length === 0) throw new DatasetError(`${path}: no periods after the header`)
  const counts = regions.map(() => new Float64Array(rows.length))
  const periods: string[] = []
  rows.forEach(({ record, line }, row) => {
    if (record.length !== header.record.length) throw new DatasetError(`${path}, line ${line}: ${record.length} fields, the header has ${header.record.length}`)
    const period = record[0] as string
    if (period === '') throw new DatasetError(`${path}, line ${line}, column "${header.record[0]}": the period is empty`)
    periods.push(period)
    regions.forEach((region, index) => {
      const text = record[index + 1] as string
      const value = text === '' ? Number.NaN : Number(text)
      if (!(Number.isInteger(value) && value >= 0)) throw new DatasetError(`${path}, line ${line}, column "${region}": "${text}" is not a non-negative integer count`)
      ;(counts[index] as Float64Array)[row] = value
    })
  })
  return { periods, regions, counts }
}

export interface PopulationFile {
  populations: number[]
  /** each region's name from the file's `name` column (null when it has none, or that region's cell is empty) */
  names: Array<string | null>
  /** the file held population shares (summing to 1), scaled by the total given */
  shares: boolean
}

/** Shares are recognised when every value is at most 1 and they sum to 1 within this. */
const SHARE_SUM_TOLERANCE = 1e-3

/**
 * Populations for `regions` from a file with columns `region` and `population` (others ignored).
 * A file of shares (every value at most 1, summing to 1, such as measlesDE's) is scaled by
 * `totalPopulation`, which it then requires; absolute numbers are used as they are.
 */
export async function readPopulationFile (path: string, regions: readonly string[], options: { totalPopulation?: number } = {}): Promise<PopulationFile> {
  const records = await readCsv(path, 'population file')
  const header = records[0]
  if (header === undefined) throw new DatasetError(`${path}: the file is empty`)
  const regionColumn = header.record.indexOf('region')
  const populationColumn = header.record.indexOf('population')
  const nameColumn = header.record.indexOf('name')
  if (regionColumn < 0 || populationColumn < 0) throw new DatasetError(`${path}, line ${header.line}: the header needs the columns region and population (found ${header.record.join(', ')})`)
  const byRegion = new Map<string, { value: number, line: number, name: string | null }>()
  for (const { record, line } of records.slice(1)) {
    const region = record[regionColumn] ?? ''
    const text = record[populationColumn] ?? ''
    if (region === '') throw new DatasetError(`${path}, line ${line}, column "region": the region is empty`)
    const value = text === '' ? Number.NaN : Number(text)
    if (!(Number.isFinite(value) && value > 0)) throw new DatasetError(`${path}, line ${line}, column "population": "${text}" is not a positive number`)
    if (byRegion.has(region)) throw new DatasetError(`${path}, line ${line}, column "region": "${region}" is listed twice`)
    const name = nameColumn < 0 ? '' : record[nameColumn] ?? ''
    if (name.length > 200) throw new DatasetError(`${path}, line ${line}, column "name": a region's name has at most 200 characters, this one ${name.length}`)
    byRegion.set(region, { value, line, name: name === '' ? null : name })
  }
  const entries = regions.map((region) => {
    const entry = byRegion.get(region)
    if (entry === undefined) throw new DatasetError(`${path}: no population for region "${region}" of the counts file`)
    return entry
  })
  const values = entries.map((entry) => entry.value)
  const names = entries.map((entry) => entry.name)
  const sum = [...byRegion.values()].reduce((total, entry) => total + entry.value, 0)
  const shares = [...byRegion.values()].every((entry) => entry.value <= 1) && Math.abs(sum - 1) <= SHARE_SUM_TOLERANCE
  const total = options.totalPopulation
  if (shares) {
    if (total === undefined) throw new DatasetError(`${path}: the populations are shares (they sum to ${sum.toPrecision(6)}); give the total population (--total-population) to turn them into residents`)
    return { populations: values.map((value) => value * total), names, shares: true }
  }
  if (total !== undefined) throw new DatasetError(`${path}: the populations are numbers of residents, not shares; --total-population applies only to shares`)
  return { populations: values, names, shares: false }
}

/** An undirected edge list `a,b` (a header `a,b` is skipped) over the regions of the counts file. */
export async function readAdjacencyFile (path: string, regions: readonly string[]): Promise<Graph> {
  const records = await readCsv(path, 'adjacency file')
  const known = new Set(regions)
  const edges: Array<[string, string]> = []
  records.forEach(({ record, line }, index) => {
    if (index === 0 && record[0] === 'a' && record[1] === 'b') return
    if (record.length !== 2 || record[0] === '' || record[1] === '') throw new DatasetError(`${path}, line ${line}: an edge needs two region names (columns a,b)`)
    const [a, b] = record as [string, string]
    if (!known.has(a)) throw new DatasetError(`${path}, line ${line}, column "a": "${a}" is not a region of the counts file`)
    if (!known.has(b)) throw new DatasetError(`${path}, line ${line}, column "b": "${b}" is not a region of the counts file`)
    if (a === b) throw new DatasetError(`${path}, line ${line}: the edge ${a}-${b} joins a region to itself`)
    edges.push([a, b])
  })
  const graph = graphFromEdges(regions, edges)
  if (!isConnected(graph)) throw new DatasetError(`${path}: the regions do not form a connected graph, so a federation over it cannot reach one model`)
  return graph
}

/** All three files as the simulator's panel and graph, regions in the counts file's order. */
export async function readForecastInputs (paths: { counts: string, population: string, adjacency: string }, options: { totalPopulation?: number } = {}): Promise<{ panel: SeriesPanel, periods: string[], graph: Graph, shares: boolean, names: Array<string | null> }> {
  const counts = await readCountsFile(paths.counts)
  const population = await readPopulationFile(paths.population, counts.regions, options)
  const graph = await readAdjacencyFile(paths.adjacency, counts.regions)
  return { panel: { regions: counts.regions, counts: counts.counts, populations: population.populations }, periods: counts.periods, graph, shares: population.shares, names: population.names }
}
