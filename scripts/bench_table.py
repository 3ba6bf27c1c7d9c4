"""docs/results.md's benchmark table from `make bench`'s results: per dataset x classifier, 10- and 20-shot accuracy
of `none`, the best baseline and mixaug's default, with paired p-values against `none`.

    python scripts/bench_table.py bench/results [--markdown]

The best baseline of a cell is the baseline with the highest mean accuracy in that cell (chosen after the
fact, which favours the baselines). Also prints, per classifier, where mixaug's default is significantly
above or below `none` and below the best baseline (paired t-test over the seeds, p < 0.05).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scipy import stats

BASELINES = ("eda", "embed-mixup", "paraphrase")
DEFAULT = "mixaug"
DATASETS = ("trec", "movies", "sms", "politics")


def _acc(runs, classifier, method, shots):
    rows = sorted(
        (r for r in runs if r["classifier"] == classifier and r["method"] == method and r["shots"] == shots),
        key=lambda r: r["seed"],
    )
    return [r["accuracy"] for r in rows]


def _p(xs, ys):
    if len(xs) < 2 or len(xs) != len(ys) or all(x == y for x, y in zip(xs, ys)):
        return None
    return float(stats.ttest_rel(xs, ys).pvalue)


def _cell(xs, p=None, bold=False):
    if not xs:
        return "–"
    mean = sum(xs) / len(xs)
    text = f"**{mean:.3f}**" if bold else f"{mean:.3f}"
    return text + (f" (p={p:.2g})" if p is not None else "")


def main(folder: str) -> None:
    root = Path(folder)
    lines = [
        "| dataset | classifier | shots | none | best baseline | mixaug (default) | mixaug − none |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts: dict[str, list[str]] = {}
    for name in DATASETS:
        path = root / name / "results.json"
        if not path.exists():
            continue
        res = json.loads(path.read_text())
        runs = res["runs"]
        for classifier in dict.fromkeys(r["classifier"] for r in runs):
            for shots in (10, 20):
                none = _acc(runs, classifier, "none", shots)
                if not none:
                    continue
                base = {b: _acc(runs, classifier, b, shots) for b in BASELINES}
                base = {b: v for b, v in base.items() if v}
                best = max(base, key=lambda b: sum(base[b]) / len(base[b])) if base else None
                mine = _acc(runs, classifier, DEFAULT, shots)
                means = {"none": sum(none) / len(none), "mixaug": sum(mine) / len(mine) if mine else -1}
                if best:
                    means["best"] = sum(base[best]) / len(base[best])
                top = max(means, key=means.get)
                p_mine = _p(mine, none)
                diff = means["mixaug"] - means["none"]
                lines.append(
                    f"| {name} | {classifier} | {shots} | {_cell(none, bold=top == 'none')} | "
                    f"{best}: {_cell(base[best], _p(base[best], none), bold=top == 'best') if best else '–'} | "
                    f"{_cell(mine, p_mine, bold=top == 'mixaug')} | {diff:+.3f} |"
                )
                v = verdicts.setdefault(classifier, [])
                if p_mine is not None and p_mine < 0.05:
                    v.append(f"{name} {shots}-shot: mixaug {'above' if diff > 0 else 'below'} none (p={p_mine:.2g})")
                for b, xs in base.items():
                    p_b = _p(mine, xs)
                    if p_b is not None and p_b < 0.05 and sum(mine) < sum(xs):
                        v.append(f"{name} {shots}-shot: mixaug below {b} (p={p_b:.2g})")
    print("\n".join(lines))
    print()
    for classifier, v in verdicts.items():
        print(f"- {classifier}: " + ("; ".join(v) if v else "no significant difference from none or any baseline"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
