# p-value columns as R's summary() prints them: printCoefmat formats the column of p-values with
# format.pval(pv, digits = 3, eps = .Machine$double.eps) (summary.glm's digits 4, less one).
# Run from the repository's root: Rscript scripts/reference/pvalues-reference.R > test/fixtures/pvalues-reference.json
columns <- list(
  c(0.38995, 1e-20),
  c(0.38995, 0.0001234, 1e-20),
  c(1e-300, 0),
  c(0.5, 0.12345, 1, 0.0123),
  c(0.00012, 0.5),
  c(1.2e-4, 1.234e-4),
  c(1e-4, 5e-5),
  c(1.23456e-10, 3e-16, 2.1e-16),
  c(0.00099996, 0.000999),
  c(0.049999, 0.05, 0.951),
  c(2.5e-7, 1.5e-5, 0.0021, 0.84)
)
rows <- vapply(columns, function(pv) {
  shown <- format.pval(pv, digits = 3, eps = .Machine$double.eps)
  sprintf('{"p": [%s], "shown": [%s]}', paste(sprintf("%.17g", pv), collapse = ", "), paste(sprintf('"%s"', shown), collapse = ", "))
}, character(1))
# summary()'s footer of the logistic model of test/fixtures/infert.csv that test/peer/predict-cli.test.ts
# fits over three simulated regions: every record but each fifth, no penalty
infert <- read.csv("test/fixtures/infert.csv")
infert$education <- factor(infert$education, levels = c("0-5yrs", "6-11yrs", "12+ yrs"))
train <- infert[seq_len(nrow(infert)) %% 5 != 0, ]
fit <- glm(case ~ age + parity + education + spontaneous + induced, family = binomial, data = train, control = glm.control(epsilon = 1e-14, maxit = 100))
footer <- sprintf('{"rows": %d, "deviance": %.10f, "dfResidual": %d, "logLik": %.10f, "aic": %.10f, "p": [%s]}',
  nrow(train), deviance(fit), df.residual(fit), as.numeric(logLik(fit)), AIC(fit),
  paste(sprintf('"%s"', format.pval(coef(summary(fit))[, 4], digits = 3, eps = .Machine$double.eps)), collapse = ", "))
cat(sprintf('{"r": "%s", "columns": [\n  %s\n],\n"infert": %s}\n', R.version.string, paste(rows, collapse = ",\n  "), footer))
