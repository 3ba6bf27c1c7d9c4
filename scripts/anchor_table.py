"""Pair `mixaug eval` runs of extra arms with `none` on the same seeds and shot samples (every arm is
deterministic, so `none` may come from an earlier run or the committed matrix), and print each arm's
accuracy difference ± s.e., paired p and wins per (dataset, classifier), at 10 shots.

    python scripts/anchor_table.py bench/results/anchor/cheap2 bench/results/anchor/cheap
    python scripts/anchor_table.py bench/results/anchor/imb --committed bench/results/imbalanced --metric macro_f1

The first folder's runs are paired with `none` from the later folders or from bench/results/<dataset>;
folders hold one sub-folder per dataset (`<prefix>-<dataset>` also works) with a results.json.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np
from scipy import stats


def runs_of(folder: str, dataset: str) -> list[dict]:
    for path in (f"{folder}/{dataset}/results.json", f"{folder}-{dataset}/results.json"):
        if os.path.exists(path):
            return json.load(open(path))["runs"]
    return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("new")
    ap.add_argument("bases", nargs="*")
    ap.add_argument("--committed", default="bench/results", help="the committed matrix (one folder per dataset)")
    ap.add_argument("--metric", default="accuracy", choices=("accuracy", "macro_f1"))
    args = ap.parse_args()
    new, bases = args.new, args.bases
    found = glob.glob(f"{new}/*/results.json") + glob.glob(f"{new}-*/results.json")
    for path in sorted(found):
        folder = os.path.dirname(path)
        ds = os.path.basename(folder).removeprefix(os.path.basename(new) + "-")
        by: dict = {}
        sources = [(f"{args.committed}/{ds}/results.json", "@bench")] + [(b, "") for b in bases] + [(path, "")]
        for src, tag in sources:
            runs = json.load(open(src))["runs"] if src.endswith(".json") and os.path.exists(src) else runs_of(src, ds)
            for run in runs:
                if run["shots"] == 10:
                    by.setdefault((run["classifier"], run["method"] + tag), {})[run["seed"]] = run[args.metric]
        for (clf, method), acc in sorted(by.items()):
            base = by.get((clf, "none"), by.get((clf, "none@bench")))
            if method.startswith("none") or base is None:
                continue
            seeds = sorted(set(acc) & set(base))
            diff = np.array([acc[s] - base[s] for s in seeds])
            p = stats.ttest_rel([acc[s] for s in seeds], [base[s] for s in seeds]).pvalue
            print(
                f"{ds:9s} {clf:9s} {method:26s} none {np.mean([base[s] for s in seeds]):.3f} -> "
                f"{np.mean([acc[s] for s in seeds]):.3f}  {diff.mean():+.3f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.3f}"
                f"  p={p:.3f}  wins {int((diff > 0).sum())}/{len(diff)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
