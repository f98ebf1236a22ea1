/**
 * Identifiers that members choose and that reach file names, store keys and log lines: job ids and
 * region names. One definition, checked at every entry (command line, federation file, network), so
 * that a member's choice can never name a place outside its own records (`../../federation`), collide
 * with a fixed name (`latest`), or smuggle control characters into a log.
 */

/** Letters, digits, '.', '_' and '-', 1 to 64, starting with a letter or digit: never a path separator, never `..`. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** Names the peer itself gives files beside the jobs' own. */
const RESERVED_JOB_IDS = new Set(['latest'])

export const JOB_ID_RULE = 'letters, digits, ".", "_" or "-", 1 to 64 of them, starting with a letter or digit, and not "latest"'

export function isJobId (value: unknown): value is string {
  return typeof value === 'string' && JOB_ID_PATTERN.test(value) && !RESERVED_JOB_IDS.has(value.toLowerCase())
}

/**
 * Region names: letters of any script, digits, marks, spaces and . _ ' ( ) , - ; 1 to 64 characters,
 * starting with a letter or digit and not ending in a space ("Baden-Wuerttemberg", "LK Aalen", "江苏").
 */
export const REGION_NAME_PATTERN = /^[\p{L}\p{N}][\p{L}\p{N}\p{M} ._'(),-]{0,63}$/u

export const REGION_NAME_RULE = 'letters, digits, spaces and . _ \' ( ) , -, 1 to 64 of them, starting with a letter or digit, not ending in a space'

export function isRegionName (value: unknown): value is string {
  return typeof value === 'string' && REGION_NAME_PATTERN.test(value) && !value.endsWith(' ') && [...value].length <= 64
}

/** A value for an error message: at most `max` characters, control characters shown as escapes. */
export function excerpt (value: unknown, max = 80): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value)
  const visible = text.replace(/[\u0000-\u001f\u007f]/g, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`)
  const characters = [...visible]
  return characters.length <= max ? visible : `${characters.slice(0, max - 1).join('')}…`
}
