"""docs/imbalanced.md, *With imbalanced-learn*, measured: the recipe a user runs to decide on their own data (the remedies
as pipeline steps, scored on the same folds), on the bench's datasets cut to a long tail.

Per dataset and seed: TRAIN is cut to a long tail (`--sizes`, the largest first; which class gets which
size is drawn by the seed); every remedy is an imbalanced-learn pipeline over the same `StratifiedKFold`
folds (rows made inside each training fold only), scored by macro-F1 on the held-out folds (they carry the
tail's prior), then fitted on the whole tail and scored on a balanced sample of TEST (`--test-per-class`
rows of each class). Classifiers: TF-IDF word 1-2-grams + LR, and LR on frozen MiniLM embeddings.
Remedies: none, class weights, copies (RandomOverSampler), logit adjustment (τ = 1, the tail's prior) and
mixaug's rows (MixupSampler, "auto": every class up to the largest, as `--balance equal`). Not here: rows
then an adjustment by the tail's counts. A classifier fitted on rows resampled to balance has already moved
its threshold, and subtracting the tail's log prior again moves it twice: in a smoke run (SMS 40/6, 3 folds)
copies + LA and mixaug + LA called every row spam (CV macro-F1 0.115).

    python scripts/sampler_cv.py bench/data/trec.train.jsonl bench/data/trec.test.jsonl --sizes 60,30,15,8,5,5 \
        --seeds 3 --out bench/results/sampler/trec.json
    python scripts/sampler_cv.py --table bench/results/sampler          # every dataset's table, paired by seed
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ARMS = ("none", "class weights", "copies", "logit adj.", "mixaug")


def tail(df, sizes: list[int], seed: int):
    """TRAIN cut to `sizes` rows per class: class order and rows drawn by the seed."""
    rng = np.random.default_rng(seed)
    classes = sorted(df["label"].unique(), key=str)
    order = [classes[i] for i in rng.permutation(len(classes))]
    parts = [
        df[df["label"] == c].sample(n=min(n, int((df["label"] == c).sum())), random_state=seed)
        for c, n in zip(order, sizes)
    ]
    import pandas as pd

    return pd.concat(parts).sample(frac=1, random_state=seed).reset_index(drop=True)


def models(classifier: str, seed: int, embed):
    from imblearn.over_sampling import RandomOverSampler
    from imblearn.pipeline import make_pipeline
    from sklearn.compose import make_column_transformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import FunctionTransformer

    import mixaug

    def features():
        if classifier == "tfidf":
            return make_column_transformer((TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), "text"))
        return FunctionTransformer(lambda X: embed(X["text"].tolist()))

    lr = lambda **kw: LogisticRegression(max_iter=2000, C=10.0 if classifier == "tfidf" else 1.0, **kw)
    return {
        "none": make_pipeline(features(), lr()),
        "class weights": make_pipeline(features(), lr(class_weight="balanced")),
        "copies": make_pipeline(RandomOverSampler(random_state=seed), features(), lr()),
        "logit adj.": make_pipeline(features(), mixaug.LogitAdjustedClassifier(lr())),
        "mixaug": make_pipeline(mixaug.MixupSampler(random_state=seed), features(), lr()),
    }


def run(args) -> None:
    import pandas as pd
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    import mixaug

    train, test = mixaug.read_dataset(args.train), mixaug.read_dataset(args.test)
    encoder = mixaug.load_stack().encoder
    cache: dict = {}

    def embed(texts):
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, encoder.encode(missing)))
        return np.stack([cache[t] for t in texts])

    sizes = [int(s) for s in args.sizes.split(",")]
    out = {"train": args.train, "sizes": sizes, "folds": args.folds, "runs": []}
    for seed in range(args.seeds):
        data = tail(train, sizes, seed)
        X, y = data[["text"]], data["label"]
        balanced = pd.concat(
            g.sample(n=min(len(g), args.test_per_class), random_state=seed) for _, g in test.groupby("label")
        )
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=seed)
        for classifier in args.classifiers.split(","):
            for arm, model in models(classifier, seed, embed).items():
                started = time.time()
                cv = cross_val_score(model, X, y, cv=folds, scoring="f1_macro", error_score="raise")
                pred = model.fit(X, y).predict(balanced[["text"]])
                run = {
                    "seed": seed,
                    "classifier": classifier,
                    "arm": arm,
                    "cv_macro_f1": float(cv.mean()),
                    "test_macro_f1": float(f1_score(balanced["label"], pred, average="macro")),
                    "seconds": round(time.time() - started, 1),
                }
                out["runs"].append(run)
                print(json.dumps(run), file=sys.stderr, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


def table(root: Path) -> None:
    print("| dataset (sizes) | classifier | score | " + " | ".join(ARMS) + " | mixaug − best other |")
    print("|---" * (len(ARMS) + 4) + "|")
    for path in sorted(root.glob("*.json")):
        res = json.loads(path.read_text())
        for classifier in dict.fromkeys(r["classifier"] for r in res["runs"]):
            for score in ("cv_macro_f1", "test_macro_f1"):
                by = {
                    a: {r["seed"]: r[score] for r in res["runs"] if r["arm"] == a and r["classifier"] == classifier}
                    for a in ARMS
                }
                seeds = sorted(by["none"])
                mean = {a: np.mean([by[a][s] for s in seeds]) for a in ARMS}
                best = max((a for a in ARMS if not a.startswith("mixaug")), key=mean.get)
                cells = [f"**{mean[a]:.3f}**" if mean[a] == max(mean.values()) else f"{mean[a]:.3f}" for a in ARMS]
                diffs = [paired([by["mixaug"][s] - by[best][s] for s in seeds]) + f" ({best})"]
                name = f"{path.stem} ({'/'.join(map(str, res['sizes']))})"
                label = "CV folds (tail's prior)" if score == "cv_macro_f1" else "balanced TEST"
                print(f"| {name} | {classifier} | {label} | " + " | ".join(cells + diffs) + " |")


def paired(d: list[float]) -> str:
    if len(d) < 2:
        return f"{d[0]:+.3f}"
    se = np.std(d, ddof=1) / np.sqrt(len(d))
    p = stats.ttest_1samp(d, 0).pvalue if se > 0 else float("nan")
    return f"{np.mean(d):+.3f} ± {se:.3f} (p {p:.2g})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train", nargs="?")
    ap.add_argument("test", nargs="?")
    ap.add_argument("--sizes", default="100,30,10,5")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--classifiers", default="tfidf,frozen")
    ap.add_argument("--out")
    ap.add_argument("--table", type=Path)
    args = ap.parse_args()
    if args.table:
        table(args.table)
    else:
        if not (args.train and args.test and args.out):
            ap.error("TRAIN, TEST and --out are needed (or --table FOLDER)")
        run(args)


if __name__ == "__main__":
    main()
