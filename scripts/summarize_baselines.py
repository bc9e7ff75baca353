"""Summarises scripts/reproduce_baselines.sh results: mean and 95% confidence interval (Student t) of
test HR@1 per dataset / source / model, next to LLaRA's published values and the 0.95 x target."""
import collections
import math
import sys

# LLaRA (SIGIR'24) Table: HR@1 of the traditional baselines.
PUBLISHED = {("movielens", "sasrec"): .3444, ("movielens", "gru4rec"): .3750, ("movielens", "caser"): .3861,
             ("lastfm", "sasrec"): .2233, ("lastfm", "gru4rec"): .2616, ("lastfm", "caser"): .2233}
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def main(path: str) -> int:
    groups = collections.OrderedDict()
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 5:
                raise SystemExit(f"error: {path}:{lineno}: expected dataset, source, model, seed, hr@1")
            ds, source, model, _seed, hr = parts
            groups.setdefault((ds, source, model), []).append(float(hr))
    print(f"{'dataset':<10} {'source':<9} {'model':<8} {'n':>2} {'HR@1 mean':>9} {'95% CI':>17} {'LLaRA':>6} {'ratio':>6}  >=0.95x")
    for (ds, source, model), xs in groups.items():
        n = len(xs)
        mean = sum(xs) / n
        half = T975.get(n - 1, 1.96) * math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) / math.sqrt(n) if n > 1 else float("nan")
        pub = PUBLISHED.get((ds, model))
        ratio = mean / pub if pub else float("nan")
        ok = "yes" if pub and ratio >= 0.95 else ("no" if pub else "-")
        print(f"{ds:<10} {source:<9} {model:<8} {n:>2} {mean:>9.4f} [{mean - half:.4f}, {mean + half:.4f}] "
              f"{pub if pub else float('nan'):>6.4f} {ratio:>6.3f}  {ok}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: summarize_baselines.py RESULTS.tsv")
    sys.exit(main(sys.argv[1]))
