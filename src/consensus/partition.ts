import { PartitionError } from './errors.ts'
import type { Rng } from './types.ts'

/**
 * How a simulation spreads a data set's rows over peers. `even` deals shuffled rows round-robin;
 * `skewed` gives peer i a share proportional to (i + 1)^2 so that the largest peer holds many times the
 * smallest one's rows, as provinces of very different size do. Every peer gets at least `minimumRows`.
 */
export type SplitKind = 'even' | 'skewed'

export function splitRows (rows: number, peers: number, kind: SplitKind, rng: Rng, minimumRows = 1): number[][] {
  if (!Number.isInteger(peers) || peers < 1) throw new PartitionError(`peers must be a positive integer, got ${peers}`)
  if (rows < peers * minimumRows) throw new PartitionError(`${rows} rows cannot give each of ${peers} peers at least ${minimumRows} rows`)
  const order = Array.from({ length: rows }, (_, index) => index)
  for (let index = rows - 1; index > 0; index--) {
    const other = Math.floor(rng() * (index + 1))
    const held = order[index] as number
    order[index] = order[other] as number
    order[other] = held
  }
  const sizes = new Array<number>(peers).fill(minimumRows)
  let remaining = rows - peers * minimumRows
  const weights = Array.from({ length: peers }, (_, index) => (kind === 'even' ? 1 : (index + 1) ** 2))
  const totalWeight = weights.reduce((sum, weight) => sum + weight, 0)
  const extra = weights.map((weight) => Math.floor((remaining * weight) / totalWeight))
  for (let index = 0; index < peers; index++) sizes[index] = (sizes[index] as number) + (extra[index] as number)
  remaining -= extra.reduce((sum, value) => sum + value, 0)
  for (let index = 0; remaining > 0; index = (index + 1) % peers, remaining--) sizes[peers - 1 - index] = (sizes[peers - 1 - index] as number) + 1
  const parts: number[][] = []
  let cursor = 0
  for (const size of sizes) {
    parts.push(order.slice(cursor, cursor + size).sort((a, b) => a - b))
    cursor += size
  }
  return parts
}

/** One peer per distinct value of a column, in sorted order of the values. */
export function partitionByValue (values: ReadonlyArray<string>): { names: string[], parts: number[][] } {
  const groups = new Map<string, number[]>()
  values.forEach((value, index) => {
    const group = groups.get(value)
    if (group === undefined) groups.set(value, [index])
    else group.push(index)
  })
  const names = [...groups.keys()].sort()
  return { names, parts: names.map((name) => groups.get(name) as number[]) }
}
