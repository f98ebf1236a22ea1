import { isAbsolute, join, relative, resolve } from 'node:path'
import { isJobId, JOB_ID_RULE, excerpt } from '../consensus/ids.ts'
import { EpimeshError } from '../errors.ts'

/**
 * The one way a name that came from outside (a job id off the network, a flag, a proposal file) becomes
 * a path in a peer's data folder: the area is one of a fixed list, the name must be a job id (see
 * consensus/ids.ts), and the joined path is checked to lie inside the area, so that no proposal can make
 * a member write anywhere else.
 */
export type DataArea = 'proposals' | 'jobs'

const AREAS: ReadonlySet<string> = new Set<DataArea>(['proposals', 'jobs'])

export class UnsafeNameError extends EpimeshError {
  static override readonly name = 'UnsafeNameError'
  readonly exitCode = 2
  constructor (message: string) { super('NAME_INVALID', message) }
}

/** Throws NAME_INVALID unless `id` is a valid job id; `what` names the field or flag it came from. */
export function checkJobId (id: unknown, what = 'job id'): string {
  if (!isJobId(id)) throw new UnsafeNameError(`${what} ${JSON.stringify(excerpt(id, 80))} is not a valid job id: ${JOB_ID_RULE}`)
  return id
}

/** DIR/<area>, or DIR/<area>/<name><suffix> for a job id `name`, guaranteed to stay inside DIR/<area>. */
export function dataPath (dir: string, area: DataArea, name?: string, suffix = ''): string {
  if (!AREAS.has(area)) throw new TypeError(`unknown data area ${String(area)}`)
  const base = resolve(dir, area)
  if (name === undefined) return base
  const checked = checkJobId(name)
  if (suffix !== '' && !/^[.A-Za-z0-9_-]{1,16}$/.test(suffix)) throw new TypeError(`bad file suffix ${suffix}`)
  const path = join(base, `${checked}${suffix}`)
  const inside = relative(base, path)
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside) || inside.includes('/') || inside.includes('\\')) {
    throw new UnsafeNameError(`${excerpt(name)} does not name a file inside ${area}/`)
  }
  return path
}
