import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { formatLikeR, formatPValues, modelFooterLines } from '../../src/peer/cli/models.ts'
import { storedModel } from '../helpers/results.ts'
import { fixture } from '../helpers/data.ts'

const reference = JSON.parse(readFileSync(fixture('pvalues-reference.json'), 'utf8')) as { columns: Array<{ p: number[], shown: string[] }> }

describe('p-values as R prints them', () => {
  it('formats every column of the R reference exactly as format.pval(digits = 3) did', () => {
    expect(reference.columns.length).toBeGreaterThan(5)
    for (const column of reference.columns) expect(formatPValues(column.p)).toEqual(column.shown)
  })

  it('says "<2e-16" below the machine epsilon, with a space when the column is wide, and NA for none', () => {
    expect(formatPValues([1e-20])).toEqual(['<2e-16'])
    expect(formatPValues([0.5, 1e-20, null])).toEqual(['0.5', '<2e-16', 'NA'])
    expect(formatPValues([0.123456, 0.000123, 0])).toEqual(['0.123456', '0.000123', '< 2e-16'])
  })

  it('formats a vector like R format(x, digits): common decimals, scientific only when narrower', () => {
    expect(formatLikeR([0.5, 0.12345, 1, 0.0123], 3)).toEqual(['0.5000', '0.1235', '1.0000', '0.0123'])
    expect(formatLikeR([1e-4, 5e-5], 3)).toEqual(['1e-04', '5e-05'])
    expect(formatLikeR([1.23456e-10, 3e-16], 3)).toEqual(['1.23e-10', '3.00e-16'])
  })
})

describe('the footer of a model', () => {
  it('for a model stored by an earlier version: records, deviance, log-likelihood, AIC, rounds; no lineage', () => {
    const lines = modelFooterLines(storedModel('old-1'))
    // two coefficients, log-likelihood -512.25, a binomial model (it has the federation's metrics)
    expect(lines).toEqual([
      'records used: 1200, pooled over 4 regions',
      'residual deviance: 1024.50 on 1198 degrees of freedom',
      'log-likelihood: -512.250 (df = 2); AIC: 1028.50',
      'algorithm not recorded (stored by an earlier version); converged in 42 rounds'
    ])
  })
})
