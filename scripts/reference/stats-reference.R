# Pooled reference statistics for test/consensus/stats-job.test.ts, written to test/fixtures/stats-reference.json:
# per data set the mean and sample SD of each numeric feature, the pairwise-complete Pearson correlation
# matrix (the binary outcome last: point-biserial), and Pearson's chi-square (no continuity correction)
# of each factor against the outcome, over the rows where both are present.
# Run from the repository's root: Rscript scripts/reference/stats-reference.R
num <- function(x) if (is.na(x)) "null" else sprintf("%.17g", x)
vec <- function(x) paste0("[", paste(vapply(x, num, ""), collapse = ","), "]")
str <- function(x) paste0("[", paste0('"', x, '"', collapse = ","), "]")
one <- function(name, file, numeric, factors, outcome, positive) {
  d <- read.csv(file, stringsAsFactors = FALSE, na.strings = c("NA", ""))
  y <- if (is.null(positive)) d[[outcome]] else ifelse(is.na(d[[outcome]]), NA, as.numeric(d[[outcome]] == positive))
  m <- cbind(as.matrix(d[, numeric, drop = FALSE]), y)
  colnames(m) <- c(numeric, outcome)
  r <- cor(m, use = "pairwise.complete.obs")
  tests <- vapply(factors, function(f) {
    t <- chisq.test(table(y, d[[f]]), correct = FALSE)
    sprintf('"%s": {"chiSquare": %s, "df": %s, "pValue": %s}', f, num(unname(t$statistic)), num(unname(t$parameter)), num(t$p.value))
  }, "")
  paste0('"', name, '": {',
    '"numeric": ', str(numeric), ', ',
    '"mean": ', vec(vapply(numeric, function(v) mean(d[[v]], na.rm = TRUE), 0)), ', ',
    '"sd": ', vec(vapply(numeric, function(v) sd(d[[v]], na.rm = TRUE), 0)), ', ',
    '"correlation": [', paste(apply(r, 1, vec), collapse = ","), '], ',
    '"chiSquare": {', paste(tests, collapse = ", "), '}}')
}
bc <- read.csv("test/fixtures/breast_cancer.csv")
out <- paste0('{"R": "', R.version.string, '",\n',
  one("infert", "test/fixtures/infert.csv", c("age", "parity", "induced", "spontaneous"), c("education"), "case", NULL), ",\n",
  one("wnv", "test/fixtures/wnv.csv", c("age"), c("sex", "syndrome"), "death", "Yes"), ",\n",
  one("breast_cancer", "test/fixtures/breast_cancer.csv", setdiff(names(bc), "malignant"), character(0), "malignant", NULL), "\n}\n")
writeLines(out, "test/fixtures/stats-reference.json", sep = "")
