"""Pair extra eval arms with the committed matrix: the "Levers tried since" table of docs/results.md.

    python scripts/bench_levers.py bench/results bench/results/levers

Each folder under the second argument is a `mixaug eval` run named <anything>-<dataset> that added arms
to the matrix's dataset with the same settings and seeds (`--methods ARM`, `none` optional). Every arm
is deterministic (the shot samples and each method's rows depend only on the seed), so a run's arm pairs
seed by seed with the matrix's `none` and `mixaug`; where both have an arm (e.g. `none`), the accuracies
must agree and a mismatch is printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats


def _acc(runs, classifier, method, shots):
    rows = sorted(
        (r for r in runs if r["classifier"] == classifier and r["method"] == method and r["shots"] == shots),
        key=lambda r: r["seed"],
    )
    return [r["accuracy"] for r in rows]


def _vs(a, b, name):
    if len(a) != len(b) or len(a) < 2:
        return ""
    return f", vs {name} {np.mean(a) - np.mean(b):+.3f} p={stats.ttest_rel(a, b).pvalue:.2g}"


def main(matrix: str, extra: str) -> None:
    for run in sorted(Path(extra).iterdir()):
        dataset = run.name.rsplit("-", 1)[-1]
        new = json.loads((run / "results.json").read_text())["runs"]
        old = json.loads((Path(matrix) / dataset / "results.json").read_text())["runs"]
        key = ("classifier", "method", "shots", "seed")
        committed = {tuple(o[k] for k in key): o["accuracy"] for o in old}
        for r in new:
            got = committed.get(tuple(r[k] for k in key))
            if got is not None and got != r["accuracy"]:
                print(f"MISMATCH {run.name}: {r} vs the matrix's {got}")
        for arm in dict.fromkeys(r["method"] for r in new if r["method"] != "none"):
            for classifier in dict.fromkeys(r["classifier"] for r in new):
                for shots in dict.fromkeys(r["shots"] for r in new):
                    mine = _acc(new, classifier, arm, shots)
                    none, base = _acc(old, classifier, "none", shots), _acc(old, classifier, "mixaug", shots)
                    print(
                        f"{dataset} {classifier} {shots}-shot {arm}: {np.mean(mine):.3f}"
                        f" (none {np.mean(none):.3f}, mixaug {np.mean(base):.3f}{_vs(mine, none, 'none')}"
                        f"{_vs(mine, base, 'mixaug')})"
                    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
