# Reference predictions for `epimesh predict` (test/learning/predict-reference.test.ts).
#
#   Rscript scripts/reference/predict-reference.R test/fixtures/infert.csv > test/fixtures/predict-reference.json
#
# Data: R's infert (test/fixtures/infert.csv). Every fifth row (rows 5, 10, ..., 245) is held out and
# scored; the model is fitted on the other 199 rows. Three models:
#
#   factors:    glm(case ~ age + parity + education + spontaneous + induced, binomial), education a
#               factor with levels 0-5yrs (reference), 6-11yrs, 12+ yrs (treatment contrasts);
#               scored with predict(fit, newdata, type = "response", se.fit = TRUE) and type = "link".
#   poisson:    glm(spontaneous ~ age + parity + education, poisson), scored the same way.
#   penalised:  the same logistic model as epimesh fits it with standardisation and lambda = 2:
#               each non-intercept design column standardised by its mean and population SD (divide
#               by n), the objective -loglik + lambda / 2 * sum of the squared standardised
#               coefficients (the intercept not penalised), minimised by Newton's method; the
#               covariance is the inverse of the penalised Hessian on the standardised scale. The
#               coefficients and covariance are mapped to the original scale (b = T s, V = T Vs T'),
#               and a held-out row x is scored as predict.glm scores it: eta = x'b, se(eta) =
#               sqrt(x' V x), fit = plogis(eta), se = fit (1 - fit) se(eta). R has no glm with this
#               penalty, so this is epimesh's definition computed independently in R.
#
# For every model the 95% interval is plogis/exp of eta -/+ qnorm(0.975) se(eta).
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1], stringsAsFactors = FALSE)
data$education <- factor(data$education, levels = c("0-5yrs", "6-11yrs", "12+ yrs"))
held <- seq(5, nrow(data), by = 5)
train <- data[-held, ]
test <- data[held, ]
control <- glm.control(epsilon = 1e-14, maxit = 100)

num <- function(x) sprintf("%.17g", x)
vec <- function(x) paste0("[", paste(num(x), collapse = ", "), "]")

scored <- function(eta, se_eta, family) {
  inv <- if (family == "binomial") plogis else exp
  fit <- inv(eta)
  se <- if (family == "binomial") pmax(fit * (1 - fit), .Machine$double.eps) * se_eta else pmax(fit, .Machine$double.eps) * se_eta
  z <- qnorm(0.975)
  list(link = eta, linkSe = se_eta, fit = fit, se = se, lower = inv(eta - z * se_eta), upper = inv(eta + z * se_eta))
}

emit <- function(name, family, coef, p, last) {
  cat(sprintf('  "%s": {\n    "family": "%s",\n    "coefficients": %s,\n', name, family, vec(coef)))
  cat(sprintf('    "link": %s,\n    "linkSe": %s,\n    "fit": %s,\n    "se": %s,\n    "lower": %s,\n    "upper": %s\n  }%s\n',
              vec(p$link), vec(p$linkSe), vec(p$fit), vec(p$se), vec(p$lower), vec(p$upper), if (last) "" else ","))
}

from_glm <- function(fit, family) {
  link <- predict(fit, newdata = test, type = "link", se.fit = TRUE)
  response <- predict(fit, newdata = test, type = "response", se.fit = TRUE)
  p <- scored(unname(link$fit), unname(link$se.fit), family)
  # the response-scale values are R's own predict(type = "response")
  p$fit <- unname(response$fit)
  p$se <- unname(response$se.fit)
  p
}

cat("{\n")
cat(sprintf('  "provenance": "%s; scripts/reference/predict-reference.R on test/fixtures/infert.csv; held out rows %s",\n',
            R.version.string, paste(range(held), collapse = " to ")))
cat(sprintf('  "heldOut": %s,\n', vec(held)))

# glm's covariance (and so predict's se.fit) uses the IRLS weights of the iterate before the last, which
# differ from those at the maximum by the size of the last step (1e-8 relative here): a second fit
# started from the first one's coefficients takes a last step of ~0, and its covariance is the inverse
# Fisher information at the maximum, as epimesh computes it.
refit <- function(formula, family) {
  first <- glm(formula, family = family, data = train, control = control)
  glm(formula, family = family, data = train, control = control, start = coef(first))
}
factors <- refit(case ~ age + parity + education + spontaneous + induced, binomial)
emit("factors", "binomial", coef(factors), from_glm(factors, "binomial"), FALSE)

poisson_fit <- refit(spontaneous ~ age + parity + education, poisson)
emit("poisson", "poisson", coef(poisson_fit), from_glm(poisson_fit, "poisson"), FALSE)

# the penalised, standardised model
lambda <- 2
X <- model.matrix(case ~ age + parity + education + spontaneous + induced, data = train)
y <- train$case
n <- nrow(X)
m <- colMeans(X)
s <- sqrt(colMeans(X^2) - m^2)
m[1] <- 0
s[1] <- 1
Z <- sweep(sweep(X, 2, m), 2, s, "/")
penalty <- diag(c(0, rep(lambda, ncol(X) - 1)))
beta <- rep(0, ncol(X))
for (iteration in 1:100) {
  mu <- plogis(drop(Z %*% beta))
  gradient <- drop(crossprod(Z, mu - y)) + penalty %*% beta
  hessian <- crossprod(Z, Z * (mu * (1 - mu))) + penalty
  step <- solve(hessian, gradient)
  beta <- beta - drop(step)
  if (max(abs(step)) < 1e-15 * max(1, max(abs(beta)))) break
}
mu <- plogis(drop(Z %*% beta))
Vs <- solve(crossprod(Z, Z * (mu * (1 - mu))) + penalty)
Tmap <- diag(1 / s)
Tmap[1, ] <- c(1, -m[-1] / s[-1])
b <- drop(Tmap %*% beta)
V <- Tmap %*% Vs %*% t(Tmap)
Xtest <- model.matrix(case ~ age + parity + education + spontaneous + induced, data = test)
eta <- drop(Xtest %*% b)
emit("penalised", "binomial", b, scored(eta, sqrt(rowSums((Xtest %*% V) * Xtest)), "binomial"), TRUE)
cat("}\n")
