import { describe, expect, it } from 'vitest'
import { addForecast, createSkillAccumulator, PIT_BINS, skillOf } from '../../src/learning/forecast-skill.ts'
import { countQuantile } from '../../src/learning/negbin.ts'
import { createRng } from '../../src/consensus/rng.ts'

describe('forecast skill', () => {
  it('counts drawn from the forecast itself: a flat randomised PIT histogram and 90% coverage; a too narrow forecast is neither', () => {
    const rng = createRng(5)
    const calibrated = createSkillAccumulator()
    const narrow = createSkillAccumulator()
    for (let draw = 0; draw < 4000; draw++) {
      const distribution = { mean: 0.5 + 6 * rng(), size: 0.7 }
      const y = countQuantile(rng(), distribution)
      addForecast(calibrated, y, distribution)
      addForecast(narrow, y, distribution.mean)
    }
    const skill = skillOf(calibrated)
    expect(skill.pit).toHaveLength(PIT_BINS)
    expect(skill.pit.reduce((sum, share) => sum + share, 0)).toBeCloseTo(1, 12)
    for (const share of skill.pit) expect(Math.abs(share - 0.1)).toBeLessThan(0.02)
    expect(Math.abs(skill.coverage - 0.9)).toBeLessThan(0.015)
    const poisson = skillOf(narrow)
    expect(poisson.coverage).toBeLessThan(0.8)
    expect((poisson.pit[0] as number) + (poisson.pit[PIT_BINS - 1] as number)).toBeGreaterThan(0.3)
    expect(poisson.logScore).toBeLessThan(skill.logScore)
  })
})
