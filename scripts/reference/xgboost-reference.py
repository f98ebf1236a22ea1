#!/usr/bin/python3
"""
XGBoost's own held-out scores for the gradient-boosted trees of epimesh, on the project's fixtures.

Each data set is split as scripts/gbdt-experiment.ts and test/learning/gbdt-xgboost.test.ts split it:
row i (0-based, file order, rows with a missing value in a used column dropped first) is held out when
i % 5 == 4; the other rows train. XGBoost 1.7 (Debian's python3-xgboost), `tree_method="hist"`, with
the parameters epimesh uses by default: 50 trees of depth 4, eta 0.3, lambda 1, gamma 0,
min_child_weight 1, 32 bins; factors as categorical features split one level against the rest
(max_cat_to_onehot above the number of levels); the base score the training rows' mean, as epimesh's
base margin. Run:

    /usr/bin/python3 scripts/reference/xgboost-reference.py > test/fixtures/xgboost-reference.json
"""
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import xgboost as xgb

FIXTURES = Path(__file__).resolve().parent.parent.parent / 'test' / 'fixtures'
PARAMS = {'trees': 50, 'depth': 4, 'learningRate': 0.3, 'lambda': 1, 'gamma': 0, 'minChildWeight': 1, 'bins': 32}
DATASETS = [
    {'name': 'infert', 'file': 'infert.csv', 'outcome': 'case', 'positive': None,
     'numeric': ['age', 'parity', 'induced', 'spontaneous'], 'factors': ['education']},
    {'name': 'wnv', 'file': 'wnv.csv', 'outcome': 'death', 'positive': 'Yes',
     'numeric': ['age'], 'factors': ['sex', 'syndrome']},
    {'name': 'breast_cancer', 'file': 'breast_cancer.csv', 'outcome': 'malignant', 'positive': None,
     'numeric': None, 'factors': []},
]


def auc(y, p):
    order = np.argsort(p, kind='mergesort')
    ranks = np.empty(len(p))
    sorted_p = p[order]
    i = 0
    while i < len(p):
        j = i
        while j + 1 < len(p) and sorted_p[j + 1] == sorted_p[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def main():
    out = {'xgboost': xgb.__version__, 'params': PARAMS, 'holdout': 'row % 5 == 4', 'datasets': {}}
    for spec in DATASETS:
        with open(FIXTURES / spec['file'], newline='') as handle:
            rows = list(csv.DictReader(handle))
        numeric = spec['numeric'] if spec['numeric'] is not None else [c for c in rows[0].keys() if c != spec['outcome']]
        used = [spec['outcome']] + numeric + spec['factors']
        rows = [r for r in rows if all(r[c] not in ('', 'NA') for c in used)]
        levels = {f: sorted({r[f] for r in rows}) for f in spec['factors']}
        def outcome(value):
            return 1.0 if (value == spec['positive'] if spec['positive'] is not None else float(value) == 1) else 0.0
        X = np.array([[float(r[c]) for c in numeric] + [float(levels[f].index(r[f])) for f in spec['factors']] for r in rows])
        y = np.array([outcome(r[spec['outcome']]) for r in rows])
        test = np.arange(len(rows)) % 5 == 4
        types = ['q'] * len(numeric) + ['c'] * len(spec['factors'])
        train = xgb.DMatrix(X[~test], label=y[~test], feature_types=types, enable_categorical=True)
        held = xgb.DMatrix(X[test], label=y[test], feature_types=types, enable_categorical=True)
        mean = float(y[~test].mean())
        booster = xgb.train({
            'objective': 'binary:logistic', 'tree_method': 'hist', 'max_depth': PARAMS['depth'], 'eta': PARAMS['learningRate'],
            'lambda': PARAMS['lambda'], 'gamma': PARAMS['gamma'], 'min_child_weight': PARAMS['minChildWeight'], 'max_bin': PARAMS['bins'],
            'max_cat_to_onehot': 64, 'base_score': mean, 'nthread': 1, 'seed': 0,
        }, train, num_boost_round=PARAMS['trees'])
        p = booster.predict(held)
        eps = 1e-15
        log_loss = float(-np.mean(y[test] * np.log(np.clip(p, eps, 1)) + (1 - y[test]) * np.log(np.clip(1 - p, eps, 1))))
        out['datasets'][spec['name']] = {
            'outcome': spec['outcome'], 'numeric': numeric, 'factors': spec['factors'],
            'trainRows': int((~test).sum()), 'testRows': int(test.sum()),
            'auc': auc(y[test], p), 'logLoss': log_loss, 'brier': float(np.mean((p - y[test]) ** 2)),
        }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
