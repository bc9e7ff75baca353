"""The statistics of the quality and behaviour-signal tables (scripts/quality_summary.py,
scripts/behaviour_signal_summary.py), on scipy: Wilson 95% intervals of a hit rate and the exact
McNemar test of two variants on the same cases (a two-sided binomial test on the discordant cases)."""
import json

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


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
