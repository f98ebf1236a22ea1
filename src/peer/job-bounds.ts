/**
 * The range of every job parameter a member can set, in a federation file or a proposal off the network.
 * A value outside is refused where it enters (FEDERATION_INVALID naming the field, or the announcement is
 * dropped and counted), never clamped: Node clamps a timer beyond 2^31 - 1 ms to 1 ms, and a job with a
 * tolerance of 0 or a billion rounds never ends. The README lists the same numbers.
 */
export const JOB_BOUNDS = Object.freeze({
  /** per-round deadline: long enough for a loaded WAN link, short enough that a stalled job is noticed */
  roundDeadlineMs: { min: 50, max: 600_000 },
  maxRounds: { min: 1, max: 100_000 },
  tolerance: { min: 1e-14, max: 1e-2 },
  lambda: { min: 0, max: 1e6 },
  dropAfterRounds: { min: 0, max: 10_000 },
  /** ADMM clipping radius, relative to the size of the starting point (see admm.ts) */
  clipRadius: { min: 1e-3, max: 1e6 },
  /** boosted trees: how many, how deep, the shrinkage, the split gain and child weight floors, bins per feature */
  trees: { min: 1, max: 1000 },
  depth: { min: 1, max: 10 },
  learningRate: { min: 1e-3, max: 1 },
  gamma: { min: 0, max: 1e6 },
  minChildWeight: { min: 0, max: 1e6 },
  bins: { min: 2, max: 256 },
  /** values in one level's histograms of a tree job (nodes x bins over all features x 3): 2^22, 64 MiB in the masked sums' fixed point */
  treeHistogramValues: 2 ** 22,
  /** features of one model, and levels of one categorical feature */
  features: { max: 200 },
  levels: { max: 1000 },
  /** column names and level labels, in characters */
  nameLength: { max: 64 },
  /** a proposal not started this long after it was first seen is forgotten (no more answers go out) */
  startTimeoutMs: 120_000
})

/** Boosted trees' settings when a model of kind gbdt leaves them out: XGBoost's (eta 0.3, gamma 0, min child weight 1) with 50 trees of depth 4 (6 in XGBoost: regional data sets are small) and 32 bins. */
export const DEFAULT_TREE_SETTINGS = Object.freeze({ trees: 50, depth: 4, learningRate: 0.3, gamma: 0, minChildWeight: 1, bins: 32 })

/** Column names and level labels: printable, no control characters, at most 64 characters. */
export const COLUMN_NAME_PATTERN = /^[^\u0000-\u001f\u007f]{1,64}$/u
