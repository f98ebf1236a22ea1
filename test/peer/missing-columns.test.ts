import { describe, expect, it } from 'vitest'
import { missingColumns } from '../../src/peer/runtime/checks.ts'
import type { ModelSpec } from '../../src/peer/federation.ts'

const model = (outcome: string, features: string[]): ModelSpec => ({ family: 'binomial', outcome, features: features.map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'newton', tolerance: 1e-8, maxRounds: 50, roundDeadlineMs: 1000, dropAfterRounds: 0 })

describe('a decline for a missing column', () => {
  const rows = [{ __id: 'f00d', age: 30, case: 1 }, { __id: 'beef', age: 41, case: 0 }]
  it('lists the region\'s columns, not the store\'s field for the hashed record id', () => {
    expect(missingColumns(rows, model('Death', ['age']))).toBe('no column "Death" in this region\'s records (columns: "age", "case")')
    expect(missingColumns(rows, model('case', ['age']))).toBeNull()
  })
  it('a job cannot use that field as a feature', () => {
    expect(missingColumns(rows, model('case', ['__id']))).toBe('no column "__id" in this region\'s records (columns: "age", "case")')
  })
})
