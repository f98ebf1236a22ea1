#!/usr/bin/Rscript
# Reference fits of the endemic-epidemic model by R's surveillance::hhh4, for the tests of
# src/learning/endemic-epidemic.ts and the federated fit, on fluBYBW and measlesDE (both ship with the
# surveillance package; the counts, populations and adjacency are the project's fixtures).
#
# For each data set, two designs, each NegBin1 with ar = ~1 and ne = ~1 over first-order adjacency
# (neighbourhood == 1, unnormalised weights):
#   shared:        end = ~1 + sin(2 * pi * t/52) + cos(2 * pi * t/52), offset population(sts)
#   unitSpecific:  end = ~ -1 + fe(1, unitSpecific = TRUE) + sin(...) + cos(...), same offset
# population(sts) is the population share of each region (fluBYBW: of Bavaria and Baden-Wuerttemberg;
# measlesDE: of Germany). measlesDE carries no neighbourhood matrix, so its adjacency is read from
# test/fixtures/measlesDE_adjacency.csv; fluBYBW's is its own and is checked against the fixture.
#
# Each design is fitted twice: on all weeks (subset 2:n), and on the weeks before the last 52
# (subset 2:(n - 52)), whose fit then forecasts each of the last 52 weeks one week ahead from the
# observed week before (oneStepAhead(type = "final")), scored by surveillance::scores (logs, rps, dss),
# the absolute error of the mean and the randomised-PIT coverage of the central 90% interval (the
# share of [F(y - 1), F(y)] inside [0.05, 0.95]). The fits use hhh4's default optimizer (nlminb);
# its estimates agree with hhh4's own Newton-Raphson run to a score tolerance of 1e-9 to 7e-12
# (relative). A region without a single case in the fitted weeks has no finite maximum for its own
# intercept (it goes to -Inf, and each optimizer stops somewhere below -15): `zeroRegions` lists them.
#
# Run from the repository's root:
#   Rscript scripts/reference/hhh4-reference.R > test/fixtures/hhh4-reference.json
suppressMessages(library(surveillance))

fixtures <- file.path("test", "fixtures")
adjacency_matrix <- function(file, units) {
  edges <- read.csv(file.path(fixtures, file), colClasses = "character")
  m <- matrix(0L, length(units), length(units), dimnames = list(units, units))
  for (i in seq_len(nrow(edges))) {
    a <- edges$a[i]; b <- edges$b[i]
    stopifnot(a %in% units, b %in% units)
    m[a, b] <- 1L; m[b, a] <- 1L
  }
  m
}

data(fluBYBW)
data(measlesDE)
flu_adjacency <- neighbourhood(fluBYBW) == 1
stopifnot(all(flu_adjacency == (adjacency_matrix("fluBYBW_adjacency.csv", colnames(fluBYBW)) == 1)))
measles_adjacency <- adjacency_matrix("measlesDE_adjacency.csv", colnames(measlesDE)) == 1

control_for <- function(sts, weights, unit_specific, subset) {
  end_formula <- if (unit_specific) ~ -1 + fe(1, unitSpecific = TRUE) else ~ 1
  list(end = list(f = addSeason2formula(end_formula, S = 1, period = 52), offset = population(sts)),
       ar = list(f = ~ 1),
       ne = list(f = ~ 1, weights = weights),
       family = "NegBin1",
       subset = subset)
}

pit_coverage <- function(y, mu, size, lower = 0.05, upper = 0.95) {
  above <- pnbinom(y, mu = mu, size = size)
  below <- ifelse(y > 0, pnbinom(y - 1, mu = mu, size = size), 0)
  inside <- pmax(0, pmin(above, upper) - pmax(below, lower))
  ifelse(above > below, inside / (above - below), as.numeric(below >= lower & below <= upper))
}

fit_summary <- function(fit) {
  list(coefficients = as.list(fit$coefficients),
       standardErrors = as.list(fit$se),
       logLikelihood = fit$loglikelihood,
       convergence = fit$convergence,
       rows = length(fit$control$subset))
}

reference <- function(name, sts, weights, unit_specific) {
  n <- nrow(sts)
  full <- hhh4(sts, control_for(sts, weights, unit_specific, 2:n))
  train <- hhh4(sts, control_for(sts, weights, unit_specific, 2:(n - 52)))
  stopifnot(full$convergence, train$convergence)
  osa <- oneStepAhead(train, tp = c(n - 52, n - 1), type = "final")
  y <- osa$observed
  mu <- osa$pred
  size <- exp(osa$psi[1, 1])  # NegBin1: one parameter for all regions, -log(overdisp) = log(size)
  logs <- -dnbinom(y, mu = mu, size = size, log = TRUE)
  s <- scores(osa, which = c("logs", "rps", "dss"), individual = TRUE)
  stopifnot(max(abs(s[, , "logs"] - logs)) < 1e-9)
  list(data = name,
       design = if (unit_specific) "unitSpecific" else "shared",
       periods = n,
       regions = colnames(sts),
       offsets = as.list(setNames(population(sts)[1, ], colnames(sts))),
       zeroRegions = list(full = as.list(colnames(sts)[colSums(observed(sts)[2:n, , drop = FALSE]) == 0]),
                          training = as.list(colnames(sts)[colSums(observed(sts)[2:(n - 52), , drop = FALSE]) == 0])),
       full = fit_summary(full),
       training = fit_summary(train),
       heldOut = list(from = n - 52, to = n, forecasts = length(y),
                      logScore = -mean(s[, , "logs"]),
                      rps = mean(s[, , "rps"]),
                      dss = mean(s[, , "dss"]),
                      mae = mean(abs(y - mu)),
                      coverage = mean(pit_coverage(y, mu, size))))
}

fits <- list(
  reference("fluBYBW", fluBYBW, flu_adjacency, FALSE),
  reference("fluBYBW", fluBYBW, flu_adjacency, TRUE),
  reference("measlesDE", measlesDE, measles_adjacency, FALSE),
  reference("measlesDE", measlesDE, measles_adjacency, TRUE)
)

out <- list(source = paste0("R ", R.version$major, ".", R.version$minor, ", surveillance ",
                            as.character(packageVersion("surveillance")),
                            ", scripts/reference/hhh4-reference.R"),
            fits = fits)
write_json <- function(x) {
  # a small JSON writer (no jsonlite dependency): numbers with 17 significant digits
  if (is.null(x)) return("null")
  if (is.list(x)) {
    keys <- names(x)
    if (is.null(keys)) return(paste0("[", paste(vapply(x, write_json, ""), collapse = ","), "]"))
    return(paste0("{", paste(sprintf("\"%s\":%s", keys, vapply(x, write_json, "")), collapse = ","), "}"))
  }
  if (is.character(x)) {
    quoted <- sprintf("\"%s\"", gsub("\"", "\\\\\"", x))
    return(if (length(x) == 1) quoted else paste0("[", paste(quoted, collapse = ","), "]"))
  }
  if (is.logical(x)) return(if (length(x) == 1) tolower(as.character(x)) else paste0("[", paste(tolower(as.character(x)), collapse = ","), "]"))
  values <- sprintf("%.17g", x)
  if (length(x) == 1) values else paste0("[", paste(values, collapse = ","), "]")
}
cat(write_json(out), "\n")
