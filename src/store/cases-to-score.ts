import { readCsv } from './csv.ts'
import { CasesInvalidError, cut, IdentifierRefusedError, ImportInvalidError, type RowProblem } from './errors.ts'
import { checkHeaderNames, identifiersByName, isAction, Problems, validateCell } from './import.ts'
import type { CaseSchema } from './schema.ts'
import type { CaseRow } from './layout.ts'
import { isMissing, LATEST_DATE, textProblem, trimCell } from './values.ts'

/**
 * New case records to score with a stored model (epimesh predict), read with the store's schema and
 * the same rules as an import (csv.ts, values.ts), and never stored. What makes the whole file
 * unusable is an error (CASES_INVALID, exit 2): not clean UTF-8 CSV, a header with empty or repeated
 * names, a column the schema does not know, a required column or one the model reads missing,
 * columns named like direct identifiers the schema does not drop, or not one record. A record whose
 * values do not pass (a number that is not one, a value out of range, a level the schema does not
 * list, the wrong number of fields) keeps its problems and is not scored; the others are. The outcome
 * and the record id may be absent: new cases have no outcome yet, and the id is only echoed.
 */
export interface CaseToScore {
  /** the record's position among the file's records, from 1 */
  row: number
  /** its line in the file */
  line: number
  /** the record id as written (null when the file has no id column or the record none) */
  id: string | null
  /** its values, typed as the store types them (a number, a level, a date; null when missing) */
  values: CaseRow
  /** why its values do not pass (empty when they do) */
  problems: RowProblem[]
}

export interface CasesToScore {
  header: string[]
  records: CaseToScore[]
}

/** Records read at most, so that a file meant for import does not fill the memory of a scoring run. */
export const MAX_RECORDS_TO_SCORE = 1_000_000

function refused (error: unknown): never {
  if (error instanceof ImportInvalidError) throw new CasesInvalidError(error.problems, error.more)
  throw error
}

export async function readCasesToScore (file: string, schema: CaseSchema, options: { columns: readonly string[], model?: string }): Promise<CasesToScore> {
  let header: string[] | null = null
  let headerLine = 1
  const records: CaseToScore[] = []
  const fileProblems = new Problems(file, 100)
  let index = new Map<string, number>()
  let columns: Array<[string, Exclude<CaseSchema['columns'][string], { action: string }>]> = []
  try {
    for await (const { fields, line } of readCsv(file)) {
      if (header === null) {
        header = fields.map(trimCell)
        headerLine = line
        checkHeaderNames(file, header, line)
        index = new Map(header.map((column, position) => [column, position]))
        for (const column of header) {
          if (column !== schema.id && !(column in schema.columns)) fileProblems.add(line, column, 'COLUMN_UNKNOWN', 'not in the store\'s schema (see epimesh schema)')
        }
        for (const [column, rule] of Object.entries(schema.columns)) {
          if (column === schema.id || column === schema.outcome || isAction(rule) || index.has(column)) continue
          if (rule.required === true) fileProblems.add(line, column, 'COLUMN_MISSING', 'a required column is missing')
        }
        for (const column of options.columns) {
          if (!index.has(column) && !fileProblems.list.some((problem) => problem.column === cut(column))) fileProblems.add(line, column, 'COLUMN_MISSING', `the model${options.model === undefined ? '' : ` of job ${options.model}`} reads this column`)
        }
        fileProblems.throwIfAny()
        const identifiers = identifiersByName(header, schema, schema.id)
        if (identifiers.length > 0) throw new IdentifierRefusedError(file, identifiers)
        columns = Object.entries(schema.columns).flatMap(([column, rule]) => column === schema.id || isAction(rule) || !index.has(column) ? [] : [[column, rule] as [string, typeof columns[number][1]]])
        continue
      }
      if (records.length >= MAX_RECORDS_TO_SCORE) throw new CasesInvalidError([{ file, line, column: '(row)', kind: 'TOO_MANY_RECORDS', reason: `more than ${MAX_RECORDS_TO_SCORE} records; score them in parts` }], 0)
      const row = records.length + 1
      const problems: RowProblem[] = []
      const values: CaseRow = {}
      let id: string | null = null
      if (fields.length !== header.length) {
        problems.push({ file, line, column: '(row)', kind: 'FIELD_COUNT', reason: `${fields.length} fields where the header has ${header.length}` })
        records.push({ row, line, id, values, problems })
        continue
      }
      const idIndex = index.get(schema.id)
      if (idIndex !== undefined && !isMissing(fields[idIndex])) {
        const text = trimCell(fields[idIndex] as string)
        id = textProblem(text, { formula: false }) === null ? text : null
      }
      for (const [column, rule] of columns) {
        const raw = fields[index.get(column) as number]
        if (isMissing(raw)) {
          values[column] = null
          continue
        }
        const text = trimCell(raw as string)
        const result = validateCell(rule, text, LATEST_DATE)
        if ('value' in result) values[column] = result.value
        else {
          values[column] = null
          problems.push({ file, line, column: cut(column), kind: result.kind, reason: result.reason })
        }
      }
      records.push({ row, line, id, values, problems })
    }
  } catch (error) {
    refused(error)
  }
  if (header === null) throw new CasesInvalidError([{ file, line: 1, column: '(header)', kind: 'NO_RECORDS', reason: 'the file is empty' }], 0)
  if (records.length === 0) throw new CasesInvalidError([{ file, line: headerLine + 1, column: '(row)', kind: 'NO_RECORDS', reason: 'a header and no records' }], 0)
  return { header, records }
}

/** A problem of a record as one line: its column, reason and kind. */
export function problemText (problem: RowProblem): string {
  return `line ${problem.line}, column ${cut(problem.column)}: ${problem.reason} [${problem.kind}]`
}
