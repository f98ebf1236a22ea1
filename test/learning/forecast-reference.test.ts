import { describe, expect, it } from 'vitest'
import { fitModel } from '../../src/learning/fit.ts'
import { createForecastModelSpec } from '../../src/learning/forecast.ts'
import { panelHistories, pooledDesign } from '../../src/learning/forecast-panel.ts'
import { relativeError } from '../helpers/data.ts'
import { loadFluBYBW } from '../helpers/forecast-data.ts'

/*
 * Reference values from R 4.2.2, glm(..., family = poisson), run in test/fixtures on the three fluBYBW
 * files, the design built in R independently of this code:
 *
 *   counts <- read.csv("fluBYBW_counts.csv", check.names = FALSE)
 *   y <- as.matrix(counts[, -1])
 *   pop <- read.csv("fluBYBW_population.csv", colClasses = c(region = "character"))
 *   population <- pop$population[match(colnames(y), pop$region)]
 *   adj <- read.csv("fluBYBW_adjacency.csv", colClasses = "character")
 *   inc <- sweep(y, 2, population, "/") * 1e5
 *   nbr <- sapply(colnames(y), function(r) {
 *     nb <- unique(c(adj$b[adj$a == r], adj$a[adj$b == r]))
 *     rowMeans(inc[, nb, drop = FALSE])
 *   })
 *   rows <- 3:nrow(y)   # t = 2, ..., 415 (t counts rows from 0)
 *   d <- do.call(rbind, lapply(seq_len(ncol(y)), function(r) data.frame(
 *     y = y[rows, r], lpop = log(population[r]),
 *     own1 = log1p(y[rows - 1, r]), own2 = log1p(y[rows - 2, r]),      # ownScale 'count'
 *     nbr1 = log1p(nbr[rows - 1, r]), t = rows - 1)))
 *   fit <- glm(y ~ own1 + own2 + nbr1 + sin(2 * pi * t / 52) + cos(2 * pi * t / 52) + offset(lpop),
 *              family = poisson, data = d, control = glm.control(epsilon = 1e-14, maxit = 100))
 *   sprintf("%.13f", coef(fit)); sprintf("%.13f", sqrt(diag(vcov(fit)))); sprintf("%.10f", logLik(fit))
 *
 * and the same with own1 = log1p(inc[rows - 1, r]), own2 = log1p(inc[rows - 2, r]) (ownScale 'incidence').
 */
const R_COUNT = {
  rows: 57960,
  estimate: [-16.2478472850660, 0.5262912211563, -0.0217177764410, 0.8039923480712, 2.6722695498105, 2.5796183014999],
  standardError: [0.0442112117247, 0.0103722704478, 0.0099731058837, 0.0133744117004, 0.0409808748165, 0.0361652811638],
  logLikelihood: -26597.5180777216
}
const R_INCIDENCE = {
  rows: 57960,
  estimate: [-16.3209768475612, 0.8644050057380, 0.2516484808469, 0.4500932158947, 2.6758743020051, 2.7609153356717],
  standardError: [0.0450266420336, 0.0126565235456, 0.0124412732456, 0.0143873870887, 0.0409309402410, 0.0369245244216],
  logLikelihood: -24892.4844469931
}

describe('the pooled forecasting fit matches R glm (poisson) on fluBYBW', () => {
  for (const [ownScale, reference] of [['count', R_COUNT], ['incidence', R_INCIDENCE]] as const) {
    it(`own lags on the ${ownScale} scale`, async () => {
      const { panel, graph } = await loadFluBYBW()
      const spec = createForecastModelSpec({ ownScale })
      const { block, terms } = pooledDesign(spec, panelHistories(panel, graph.neighbours))
      expect(block.rows).toBe(reference.rows)
      const fit = fitModel(block, terms, { family: 'poisson', tolerance: 1e-12, maxIterations: 100 })
      expect(fit.converged).toBe(true)
      expect(relativeError(fit.coefficients.estimate, reference.estimate)).toBeLessThan(1e-8)
      expect(relativeError(fit.coefficients.standardError, reference.standardError)).toBeLessThan(1e-7)
      expect(Math.abs(fit.logLikelihood - reference.logLikelihood) / Math.abs(reference.logLikelihood)).toBeLessThan(1e-10)
    })
  }
})
