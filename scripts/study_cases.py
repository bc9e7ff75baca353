#!/usr/bin/env python3
"""The case table of a study (`sbtrec-study cases DIR`, issue 23; the paper's Table 2 from real
outputs): the test cases on which the study's variants disagree, clean and under each noise, with the
history's titles and genres (injected items marked), each variant's output and whether it is right,
and the target. Writes DIR/cases.md and DIR/cases.json.

For one seed (default: the study's first), for each clean pass and each noisy pass (study.json's
"noise" entry), the cases where the variants' HR@1 hits are not all equal; the cases where the
reference is right and the most other variants wrong come first, up to --max per pass. An item of a
noisy history that the clean history lacks is an injected one (marked "+"). Genres come from the
dataset the runs read (their config.yaml's data.root: MovieLens's u.item flags and u.genre, the sbtrec
format's genres.tsv); a dataset without them shows none.

Usage: study_cases.py DIR [--seed K] [--max N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paired_stats import jsonl  # noqa: E402
from study_report import common_cases  # noqa: E402
from sbtrec_io import atomic_write_text  # noqa: E402

ML_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
             "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def dataset_genres(run_dir):
    """{raw item id: [genre, ...]} of the dataset a run read, or {} when it has none."""
    import yaml

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    data = cfg.get("data", {})
    root = data.get("root", "")
    if not os.path.isabs(root):
        root = os.path.normpath(os.path.join(run_dir, root))
    out = {}
    if data.get("format", "grouplens") == "grouplens":
        names = ML_GENRES
        if os.path.exists(os.path.join(root, "u.genre")):
            with open(os.path.join(root, "u.genre"), encoding="latin-1") as f:
                names = [line.split("|")[0] for line in f if line.strip()]
        item = os.path.join(root, "u.item")
        if not os.path.exists(item):
            return {}
        with open(item, encoding="latin-1") as f:
            for line in f:
                fields = line.rstrip("\n").split("|")
                if len(fields) > 5:
                    g = [names[k - 5] for k in range(5, len(fields)) if fields[k] == "1" and k - 5 < len(names)]
                    out[int(fields[0])] = g
        if all(len(set(v)) <= 1 for v in out.values()) and len({tuple(v) for v in out.values()}) <= 1:
            return {}  # every item alike (synthetic data): no genre information
    else:
        path = os.path.join(root, "genres.tsv")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        i, _, g = line.rstrip("\n").partition("\t")
                        out[int(i)] = [x for x in g.split("|") if x]
    return out


def table(study_dir, study, seed, max_cases):
    variants, ref = study["variants"], study["reference"]
    passes = study["passes"]
    genres = {}
    for v in variants:
        genres = dataset_genres(os.path.join(study_dir, v, f"seed{seed}"))
        if genres:
            break
    result = {"seed": seed, "genres": bool(genres), "passes": {}}
    for p in passes:
        records = {}
        for v in variants:
            path = os.path.join(study_dir, v, f"seed{seed}", p["predictions"])
            if os.path.exists(path):
                records[v] = jsonl(path)
        if len(records) < 2:
            continue
        records = common_cases(records)  # cases pair by their index where the records carry it
        n = min(len(r) for r in records.values())
        clean = None
        if "noise" in p:
            for q in passes:
                if "noise" not in q and q["split"] == p["split"] and q["evaluator"] == p["evaluator"]:
                    path = os.path.join(study_dir, ref if ref in records else next(iter(records)), f"seed{seed}",
                                        q["predictions"])
                    clean = jsonl(path) if os.path.exists(path) else None
                    if clean is not None and all("case" in r for r in clean):
                        by_case = {r["case"]: r for r in clean}
                        first = next(iter(records.values()))
                        clean = [by_case.get(r.get("case"), {"history": []}) for r in first]
                    break
        cases = []
        for i in range(n):
            hits = {v: bool(r[i].get("hit", r[i].get("rank") == 0)) for v, r in records.items()}
            if len(set(hits.values())) < 2:
                continue
            any_r = next(iter(records.values()))[i]
            clean_history = set(clean[i]["history"]) if clean is not None and i < len(clean) else None
            history = []
            titles = any_r.get("history_titles") or [str(x) for x in any_r["history"]]
            for item, title in zip(any_r["history"], titles):
                history.append({"item": item, "title": title, "genres": genres.get(item, []),
                                "injected": clean_history is not None and item not in clean_history})
            others_wrong = sum(1 for v, h in hits.items() if v != ref and not h)
            cases.append({"case": any_r.get("case", i), "history": history,
                          "target": {"item": any_r["target"], "title": any_r.get("target_title", ""),
                                     "genres": genres.get(any_r["target"], [])},
                          "outputs": {v: {"output": r[i].get("output", ""), "hit": hits[v]} for v, r in records.items()},
                          "_order": (not hits.get(ref, False), -others_wrong, i)})
        cases.sort(key=lambda c: c["_order"])
        for c in cases:
            del c["_order"]
        result["passes"][p["name"]] = {"disagreements": len(cases), "cases": n, "shown": cases[:max_cases]}
    return result


def markdown(study, res):
    lines = [f"# Study {study.get('name', '')}: cases where the variants disagree (seed {res['seed']})", "",
             "History oldest first; `+` marks an item injected by the pass's noise; genres in brackets"
             + ("" if res["genres"] else " (the dataset has none)") + "; ✓ right, ✗ wrong.", ""]
    for name, r in res["passes"].items():
        lines += [f"## {name}: {r['disagreements']} of {r['cases']} cases disagree", ""]
        if not r["shown"]:
            lines += ["(none)", ""]
            continue
        variants = list(r["shown"][0]["outputs"])
        lines += ["| case | history | target | " + " | ".join(variants) + " |",
                  "|---|---|---|" + "---|" * len(variants)]

        def item(x):
            g = f" [{', '.join(x['genres'])}]" if x.get("genres") else ""
            return ("+" if x.get("injected") else "") + x["title"].replace("|", "/") + g

        for c in r["shown"]:
            hist = "; ".join(item(x) for x in c["history"])
            outs = " | ".join(("✓ " if o["hit"] else "✗ ") + str(o["output"]).replace("|", "/").replace("\n", " ")[:80]
                              for o in c["outputs"].values())
            lines.append(f"| {c['case']} | {hist} | {item(c['target'])} | {outs} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--seed", type=int, help="the seed whose runs are shown (default: the study's first)")
    ap.add_argument("--max", type=int, default=10, help="cases shown per pass (default 10)")
    args = ap.parse_args(argv)
    path = os.path.join(args.dir, "study.json")
    if not os.path.exists(path):
        print(f"error: {path} not found (sbtrec-study run writes it)", file=sys.stderr)
        return 1
    with open(path, encoding="utf-8") as f:
        study = json.load(f)
    seed = args.seed if args.seed is not None else study["seeds"][0]
    if seed not in study["seeds"]:
        print(f"error: --seed {seed}: the study's seeds are {study['seeds']}", file=sys.stderr)
        return 1
    res = table(args.dir, study, seed, args.max)
    md = markdown(study, res)
    atomic_write_text(os.path.join(args.dir, "cases.json"), json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(os.path.join(args.dir, "cases.md"), md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
