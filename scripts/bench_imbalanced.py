"""The imbalanced bench's tables (`make bench-imbalanced`): per dataset x classifier, macro-F1 and rare-class
recall of every arm, and mixaug's arms against the remedies a practitioner reaches for first (class weights,
random oversampling, EDA), paired seed by seed.

    python scripts/bench_imbalanced.py bench/results/imbalanced [--arm mixaug:parent:intra]  # default: --balance
    python scripts/bench_imbalanced.py --pairings bench/results/pairings   # the balanced setting

Every arm of a (dataset, seed) trains on the same sampled rows with the same rare classes (sampling depends
only on the seed), so arms from separate eval runs of the same settings pair exactly. The p-values are
two-sided paired t-tests over the seeds; ± is the standard error of the paired difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

DATASETS = ("trec", "movies", "sms", "politics")
REMEDIES = ("class-weights", "oversample", "eda")


def load(root: Path, dataset: str) -> list[dict]:
    """Every run of a dataset, from each eval folder under root whose name starts with it."""
    runs: dict[tuple, dict] = {}
    for path in sorted(root.glob(f"{dataset}*/results.json")):
        for r in json.loads(path.read_text())["runs"]:
            runs[(r["classifier"], r["method"], r["shots"], r["seed"])] = r
    return list(runs.values())


def balance_arm(root: Path, dataset: str) -> str:
    """The arm `augment --balance` runs on this dataset (parent labels; the pairing its rule picks for the
    dataset's classes), by its explicit name, which is how the eval runs stored it."""
    from mixaug.config import AugmentConfig

    for path in sorted(root.glob(f"{dataset}*/results.json")):
        classes = json.loads(path.read_text())["classes"]
        cfg = AugmentConfig(balance="equal")
        return f"mixaug:{cfg.policy}:{cfg.pairing_for(classes)}"
    return "mixaug"


def series(runs, classifier, method, metric) -> dict[int, float]:
    return {r["seed"]: r[metric] for r in runs if r["classifier"] == classifier and r["method"] == method}


def paired(xs: dict, ys: dict) -> tuple[float, float, float | None] | None:
    """(mean difference, its standard error, p) over the seeds both have, or None."""
    seeds = sorted(set(xs) & set(ys))
    if len(seeds) < 2:
        return None
    d = np.array([xs[s] - ys[s] for s in seeds])
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    p = None if np.allclose(d, d[0]) else float(stats.ttest_rel([xs[s] for s in seeds], [ys[s] for s in seeds]).pvalue)
    return float(d.mean()), se, p


def fmt(diff) -> str:
    if diff is None:
        return "–"
    mean, se, p = diff
    return f"{mean:+.3f} ± {se:.3f}" + (f" (p {p:.2g})" if p is not None else "")


def main(folder: str, arm: str) -> None:
    """arm: an eval method name, or "balance" for what `augment --balance` runs on each dataset."""
    root = Path(folder)
    wins: dict[str, list] = {}
    shown = "mixaug --balance" if arm == "balance" else arm
    arm_of = (lambda d: balance_arm(root, d)) if arm == "balance" else (lambda d: arm)
    print(f"## {shown} against the remedies (macro-F1; rare-class recall below)\n")
    print(
        "| dataset | classifier | none | class weights | oversample | EDA | SMOTE | "
        + shown
        + " | − class weights | − oversample | − EDA |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for metric in ("macro_f1", "rare_recall"):
        if metric == "rare_recall":
            print(
                "\n| dataset | classifier | none | class weights | oversample | EDA | SMOTE | "
                + shown
                + " | − class weights | − oversample | − EDA |"
            )
            print("|---|---|---|---|---|---|---|---|---|---|---|")
        for dataset in DATASETS:
            runs = load(root, dataset)
            mixaug = arm_of(dataset)
            named = dataset if arm != "balance" else f"{dataset} ({mixaug.rsplit(':', 1)[-1]})"
            for classifier in dict.fromkeys(r["classifier"] for r in runs):
                mine = series(runs, classifier, mixaug, metric)
                if not mine:
                    continue
                cells = []
                for m in ("none", *REMEDIES[:2], "eda", "smote", mixaug):
                    xs = series(runs, classifier, m, metric)
                    cells.append(f"{np.mean(list(xs.values())):.3f}" if xs else "–")
                diffs = [paired(mine, series(runs, classifier, m, metric)) for m in REMEDIES]
                if metric == "macro_f1":
                    wins.setdefault(classifier, []).append((dataset, diffs))
                print(f"| {named} | {classifier} | " + " | ".join(cells) + " | " + " | ".join(map(fmt, diffs)) + " |")
    print(
        "\n## Verdict per classifier (macro-F1): datasets where the arm is above each remedy (p < 0.05 in brackets)\n"
    )
    for classifier, rows in wins.items():
        parts = []
        for k, remedy in enumerate(REMEDIES):
            above = [d for d, diffs in rows if diffs[k] and diffs[k][0] > 0]
            sig = [
                d
                for d, diffs in rows
                if diffs[k] and diffs[k][0] > 0 and diffs[k][2] is not None and diffs[k][2] < 0.05
            ]
            below = [
                d
                for d, diffs in rows
                if diffs[k] and diffs[k][0] < 0 and diffs[k][2] is not None and diffs[k][2] < 0.05
            ]
            parts.append(
                f"{remedy}: above on {len(above)}/{len(rows)} ({len(sig)} significant)"
                + (f", significantly below on {', '.join(below)}" if below else "")
            )
        print(f"- {classifier}: " + "; ".join(parts))
    print("\n## Every arm (macro-F1 mean over the seeds, rare-class recall in brackets)\n")
    for dataset in DATASETS:
        runs = load(root, dataset)
        if not runs:
            continue
        methods = list(dict.fromkeys(r["method"] for r in runs))
        print(f"\n{dataset}:\n\n| classifier | " + " | ".join(methods) + " |\n|---|" + "---|" * len(methods))
        for classifier in dict.fromkeys(r["classifier"] for r in runs):
            cells = []
            for m in methods:
                f1 = series(runs, classifier, m, "macro_f1")
                rr = series(runs, classifier, m, "rare_recall")
                cells.append(f"{np.mean(list(f1.values())):.3f} ({np.mean(list(rr.values())):.2f})" if f1 else "–")
            print(f"| {classifier} | " + " | ".join(cells) + " |")
    print("\n## Intrusion rate and label confidence of the hard-label arms (all seeds pooled)\n")
    print("| dataset | arm | rows | intrusion rate | mean label confidence |\n|---|---|---|---|---|")
    for dataset in DATASETS:
        seen = set()
        for path in sorted(root.glob(f"{dataset}*/results.json")):
            for row in json.loads(path.read_text())["intrusion"]:
                if row["lambda_bucket"] == "all" and row["method"] not in seen:
                    seen.add(row["method"])
                    print(
                        f"| {dataset} | {row['method']} | {row['n']} | {row['intrusion_rate']:.3f} | "
                        f"{row.get('label_confidence') or float('nan'):.3f} |"
                    )


def pairings(folder: str, base: str = "mixaug:hard:intra") -> None:
    """The balanced setting: each pairing's accuracy and macro-F1, and its paired difference from random intra."""
    root = Path(folder)
    print(f"| dataset | classifier | arm | accuracy | macro-F1 | accuracy − {base} |\n|---|---|---|---|---|---|")
    for dataset in DATASETS:
        runs = load(root, dataset)
        for classifier in dict.fromkeys(r["classifier"] for r in runs):
            ref = series(runs, classifier, base, "accuracy")
            for m in dict.fromkeys(r["method"] for r in runs):
                acc = series(runs, classifier, m, "accuracy")
                f1 = series(runs, classifier, m, "macro_f1")
                diff = "" if m == base else fmt(paired(acc, ref))
                print(
                    f"| {dataset} | {classifier} | {m} | {np.mean(list(acc.values())):.3f} | "
                    f"{np.mean(list(f1.values())):.3f} | {diff} |"
                )


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--pairings":
        pairings(args[1] if len(args) > 1 else "bench/results/pairings")
        sys.exit()
    arm = "balance"
    if "--arm" in args:
        arm = args[args.index("--arm") + 1]
        del args[args.index("--arm") : args.index("--arm") + 2]
    main(args[0] if args else "bench/results/imbalanced", arm)
