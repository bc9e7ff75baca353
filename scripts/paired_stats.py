"""The statistics of the quality and behaviour-signal tables (scripts/quality_summary.py,
scripts/behaviour_signal_summary.py), on scipy: Wilson 95% intervals of a hit rate and the exact
McNemar test of two variants on the same cases (a two-sided binomial test on the discordant cases),
and the Wilcoxon signed-rank test of paired values (the study report's and paired_runs.py's ranks)."""
import json
import math
import os

from scipy import stats
from scipy.stats import binomtest


def wilson(k, n):
    """95% Wilson interval of k hits in n cases (nan, nan when n is 0)."""
    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return ci.low, ci.high


def mcnemar(a, b):
    """Wins of a over b (a hit, b not), losses, and the exact two-sided p over the discordant cases."""
    wins = sum(x and not y for x, y in zip(a, b))
    losses = sum(y and not x for x, y in zip(a, b))
    p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
    return wins, losses, p


def wilcoxon(a, b):
    """Wilcoxon signed-rank of paired a, b: {"pairs", "statistic", "p"}; p 1 when every difference is 0
    (scipy refuses), nan without pairs."""
    d = [x - y for x, y in zip(a, b)]
    if not d or all(x == 0 for x in d):
        return {"pairs": len(d), "statistic": math.nan, "p": 1.0 if d else math.nan}
    res = stats.wilcoxon(a, b)
    return {"pairs": len(d), "statistic": float(res.statistic), "p": float(res.pvalue)}


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_cases(run):
    """The test cases of a run directory: by generation (training's predictions.jsonl) and by likelihood
    (sbtrec-eval's predictions_test_likelihood.jsonl; runs made before sbtrec-eval named its files:
    predictions_likelihood.jsonl)."""
    lik = os.path.join(run, "predictions_test_likelihood.jsonl")
    if not os.path.exists(lik):
        lik = os.path.join(run, "predictions_likelihood.jsonl")
    return jsonl(os.path.join(run, "predictions.jsonl")), jsonl(lik)
