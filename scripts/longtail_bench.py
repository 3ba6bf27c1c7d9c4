"""The long-tail bench (issue 33): mixaug's rare-class rows against the free remedies a practitioner tries
first, on the bench's datasets cut to a realistic tail, scored on a balanced test and on a test drawn with
the training prior.

Per dataset and seed: TRAIN is cut to a tail (`PROFILES`; which class gets which size is drawn by the seed).
The evaluation rows are TEST plus the TRAIN rows the tail left out (no text of the tail among them): a
*balanced* test (the same rows per class) and a *prior* test (the tail's class shares, PRIOR_TEST rows).
Classifiers: TF-IDF word 1-2-grams + LR (C = 10) and LR on frozen MiniLM embeddings (C = 1).

Remedies (none add rows unless named): none; class weights ("balanced"); logit adjustment (LA: at
prediction, subtract τ·log prior of the classifier's training rows; τ = 1, and τ tuned by 3-fold CV on the
tail for each test's target: class-balanced macro-F1 for the balanced test, plain macro-F1 for the prior
test); copies, EDA and SMOTE (frozen only) topping every class up to the largest, each alone and + LA by the
tail's original counts (the issue's "+LA"); mixaug's rows for each `--pairing` in `PAIRINGS` at a budget of
B new rows per original (B in BUDGETS; each class up to at most the largest), alone, + LA by the counts the
classifier was fitted on ("+LA fit"), and + LA by the tail's counts ("+LA orig").

mixaug's rows are made once per (dataset, seed, pairing) at the largest budget and kept in OUT/rows/
(a rerun reuses them: an interrupted bench resumes); a budget B takes each class's first B x n rows (the
plan is seeded and shuffled, so a prefix is a budget-B plan). The decode statistics (planned, rejected as
duplicates, rows/s) are kept beside them.

    python scripts/longtail_bench.py rows --datasets trec,movies,sms,politics --seeds 3   # mixaug's rows
    python scripts/longtail_bench.py score --datasets trec,movies,sms,politics --seeds 3  # every arm
    python scripts/longtail_bench.py table [--budget 5] [--metric tail_recall]            # the tables
    python scripts/longtail_bench.py decodes                    # duplicates and rows/s of mixaug's rows
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from sampler_cv import tail  # TRAIN cut to a tail, as the sampler's bench cuts it (scripts/ is on the path)
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
OUT = ROOT / "bench" / "results" / "longtail"
# dataset -> class sizes, largest first (TREC without ABBR, which has 8 TEST rows: five classes)
PROFILES = {
    "trec": (100, 60, 30, 12, 5),
    "movies": (1000, 50),
    "sms": (1000, 20),
    "politics": (300, 10),
}
DROP = {"trec": ("ABBR",)}
# default: --balance's own pairing (the spread intra plan); transfer: GE3's offsets, decoded
PAIRINGS = ("default", "transfer")
BUDGETS = (1, 2, 5, 10, 20)
# the largest budget made: the returns past 5 (--max-per-row's default) are measured on TREC's default plan
MAX_BUDGET = {("trec", "default"): 20}


def max_budget(name: str, pairing: str) -> int:
    return MAX_BUDGET.get((name, pairing), 5)


BALANCED_TEST = 150  # rows per class at most
PRIOR_TEST = 1500
TAUS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def load(name: str, seed: int):
    """(tail, balanced test, prior test) for a dataset and seed."""
    train = pd.read_json(DATA / f"{name}.train.jsonl", lines=True)[["text", "label"]]
    test = pd.read_json(DATA / f"{name}.test.jsonl", lines=True)[["text", "label"]]
    train = train[~train["label"].isin(DROP.get(name, ()))]
    test = test[~test["label"].isin(DROP.get(name, ()))]
    data = tail(train, PROFILES[name], seed)
    seen = set(data["text"])
    pool = pd.concat([test, train]).drop_duplicates("text")
    pool = pool[~pool["text"].isin(seen)]
    groups = {c: g.sample(frac=1, random_state=seed) for c, g in pool.groupby("label")}
    per = min(BALANCED_TEST, min(len(g) for g in groups.values()))
    balanced = pd.concat(g.iloc[:per] for g in groups.values())
    counts = data["label"].value_counts()
    prior = pd.concat(
        g.iloc[per : per + max(1, round(PRIOR_TEST * counts[c] / counts.sum()))] for c, g in groups.items()
    )
    return data, balanced, prior


def targets(data: pd.DataFrame, budget: int) -> dict:
    """New rows per class: each class up to the largest, at most `budget` per original row."""
    counts = data["label"].value_counts()
    return {c: int(min(counts.max() - n, budget * n)) for c, n in counts.items()}


def rows_path(name: str, seed: int, pairing: str) -> Path:
    return OUT / "rows" / f"{name}.seed{seed}.{pairing}.jsonl"


def make_rows(names, seeds: int) -> None:
    import mixaug

    for name in names:
        for seed in range(seeds):
            data, _, _ = load(name, seed)
            for pairing in PAIRINGS:
                path = rows_path(name, seed, pairing)
                if path.exists():
                    continue
                quota = targets(data, max_budget(name, pairing))
                extra = {} if pairing == "default" else {"pairing": pairing}
                started = time.time()
                # the quota as --balance equal --max-per-row B would plan it, and with its pairing and labels
                out = mixaug.augment(data, quota=quota, seed=seed, only_new=True, **extra)
                s = out.attrs["mixaug_stats"]
                rows = out[["text", "label"]].assign(parent=out["mixaug_parent_a_label"])
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                rows.to_json(tmp, orient="records", lines=True, force_ascii=False)
                keep = ("requested", "new_rows", "planned", "rejected", "rows_per_s", "seconds", "pairing")
                info = {k: s[k] for k in keep} | {"decode": s["decode"], "wall": round(time.time() - started, 1)}
                path.with_suffix(".stats.json").write_text(json.dumps(info) + "\n")
                tmp.rename(path)
                print(name, seed, pairing, json.dumps(info), file=sys.stderr, flush=True)


def budget_rows(rows: pd.DataFrame, data: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Each class's first rows up to the budget (planned from that class: parent a's label)."""
    want = targets(data, budget)
    return pd.concat(g.iloc[: want.get(c, 0)] for c, g in rows.groupby("parent", sort=False))[["text", "label"]]


class Features:
    """TF-IDF fitted on each training set, or frozen MiniLM embeddings (cached per text)."""

    def __init__(self, kind: str, encoder=None):
        self.kind, self.encoder, self.cache = kind, encoder, {}

    def embed(self, texts):
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.encoder.encode(missing)))
        return np.stack([self.cache[t] for t in texts])

    def fit(self, texts):
        if self.kind == "tfidf":
            from sklearn.feature_extraction.text import TfidfVectorizer

            vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(texts)
            return vec.transform
        return self.embed


def fit_lr(kind: str, X, y, weights=None):
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(max_iter=3000, C=10.0 if kind == "tfidf" else 1.0, class_weight=weights)
    return lr.fit(X, y)


def predict(model, X, tau: float = 0.0, prior: dict | None = None):
    logp = np.log(np.clip(model.predict_proba(X), 1e-12, None))
    if tau and prior:
        pi = np.array([prior[c] for c in model.classes_], dtype=float)
        logp = logp - tau * np.log(pi / pi.sum())
    return model.classes_[logp.argmax(axis=1)]


def tuned_tau(feats: Features, texts, labels, seed: int, balanced: bool) -> float:
    """τ of TAUS with the best 3-fold CV macro-F1 on the tail (class-balanced weights when `balanced`)."""
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    texts, labels = np.asarray(texts, dtype=object), np.asarray(labels, dtype=object)
    folds = StratifiedKFold(min(3, Counter(labels).most_common()[-1][1]), shuffle=True, random_state=seed)
    score = dict.fromkeys(TAUS, 0.0)
    for tr, te in folds.split(texts, labels):
        f = feats.fit(list(texts[tr]))
        model = fit_lr(feats.kind, f(list(texts[tr])), labels[tr])
        prior = Counter(labels[tr])
        counts = Counter(labels[te])
        w = np.array([1 / counts[c] for c in labels[te]]) if balanced else None
        X = f(list(texts[te]))
        for tau in TAUS:
            pred = predict(model, X, tau, prior)
            score[tau] += f1_score(labels[te], pred, average="macro", sample_weight=w)
    return max(TAUS, key=lambda t: (round(score[t], 9), -abs(t - 1)))


def resampled(kind: str, data: pd.DataFrame, seed: int, feats: Features):
    """copies / EDA / SMOTE topping every class up to the largest: (texts, labels) or features for SMOTE."""
    counts = data["label"].value_counts()
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for c, n in counts.items():
        need = int(counts.max() - n)
        own = data.loc[data["label"] == c, "text"].tolist()
        if not need:
            continue
        if kind == "copies":
            texts += [own[i] for i in rng.integers(0, len(own), need)]
        else:
            from mixaug.evaluation.baselines import eda

            texts += eda(own, [c] * len(own), need, seed)[0]
        labels += [c] * need
    return texts, labels


def score_arms(name: str, seed: int, kind: str, feats: Features) -> list[dict]:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    data, balanced, prior_test = load(name, seed)
    counts = data["label"].value_counts()
    tail_classes = [c for c, n in counts.items() if n < counts.median()] or [counts.idxmin()]
    orig = dict(counts)
    tests = {"balanced": balanced, "prior": prior_test}
    results = []

    def record(arm, model, f, tau_for=None, prior=None):
        for test_name, test in tests.items():
            tau = tau_for(test_name) if callable(tau_for) else (tau_for or 0.0)
            pred = predict(model, f(test["text"].tolist()), tau, prior)
            p, r, _, _ = precision_recall_fscore_support(test["label"], pred, labels=tail_classes, zero_division=0)
            results.append(
                {
                    "dataset": name,
                    "seed": seed,
                    "classifier": kind,
                    "arm": arm,
                    "test": test_name,
                    "macro_f1": float(f1_score(test["label"], pred, average="macro")),
                    "tail_recall": float(np.mean(r)),
                    "tail_precision": float(np.mean(p)),
                    "tau": tau,
                }
            )

    def fit_on(texts, labels, weights=None):
        f = feats.fit(texts)
        return fit_lr(kind, f(texts), np.asarray(labels, dtype=object), weights), f

    base_t, base_l = data["text"].tolist(), data["label"].tolist()
    model, f = fit_on(base_t, base_l)
    record("none", model, f)
    taus = {
        "balanced": tuned_tau(feats, base_t, base_l, seed, True),
        "prior": tuned_tau(feats, base_t, base_l, seed, False),
    }
    record("LA", model, f, 1.0, orig)
    record("LA tuned", model, f, lambda t: taus[t], orig)
    model, f = fit_on(base_t, base_l, "balanced")
    record("class weights", model, f)
    for rs in ("copies", "EDA"):
        t, l = resampled(rs, data, seed, feats)
        model, f = fit_on(base_t + t, base_l + l)
        record(rs, model, f)
        record(f"{rs} + LA", model, f, 1.0, orig)
    if kind == "frozen":
        from imblearn.over_sampling import SMOTE

        k = int(min(5, counts.min() - 1))
        X, y = SMOTE(k_neighbors=k, random_state=seed).fit_resample(feats.embed(base_t), np.asarray(base_l, object))
        model = fit_lr(kind, X, y)
        record("SMOTE", model, feats.embed)
        record("SMOTE + LA", model, feats.embed, 1.0, orig)
    for pairing in PAIRINGS:
        path = rows_path(name, seed, pairing)
        if not path.exists():
            continue
        rows = pd.read_json(path, lines=True, dtype={"label": object, "parent": object})
        rows["label"] = rows["label"].astype(type(base_l[0]))
        rows["parent"] = rows["parent"].astype(type(base_l[0]))
        for budget in [b for b in BUDGETS if b <= max_budget(name, pairing)]:
            new = budget_rows(rows, data, budget)
            labels = base_l + new["label"].tolist()
            model, f = fit_on(base_t + new["text"].tolist(), labels)
            arm = f"mixaug {pairing} x{budget}"
            record(arm, model, f)
            record(f"{arm} + LA fit", model, f, 1.0, dict(Counter(labels)))
            record(f"{arm} + LA orig", model, f, 1.0, orig)
    return results


def score(names, seeds: int, classifiers) -> None:
    import mixaug

    encoder = mixaug.load_stack().encoder if "frozen" in classifiers else None
    for name in names:
        path = OUT / f"{name}.json"
        done = json.loads(path.read_text()) if path.exists() else []
        have = {(r["seed"], r["classifier"]) for r in done}
        for seed in range(seeds):
            for kind in classifiers:
                if (seed, kind) in have:
                    continue
                started = time.time()
                done += score_arms(name, seed, kind, Features(kind, encoder))
                print(name, seed, kind, f"{time.time() - started:.0f}s", file=sys.stderr, flush=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_suffix(".tmp").write_text(json.dumps(done, indent=0) + "\n")
                path.with_suffix(".tmp").rename(path)


FREE = ("class weights", "LA", "LA tuned", "copies", "copies + LA", "EDA", "EDA + LA", "SMOTE", "SMOTE + LA")


def paired(d) -> tuple[float, float, float]:
    d = np.asarray(d, dtype=float)
    se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    p = stats.ttest_1samp(d, 0).pvalue if len(d) > 1 and se > 0 else float("nan")
    return float(d.mean()), float(se), float(p)


COMPACT = ("none", "LA", "LA tuned", "class weights", "copies + LA", "EDA", "SMOTE")  # --compact: these + mixaug's


def table(budget: int | None = None, metric: str = "macro_f1", compact: bool = False) -> None:
    """Per dataset x classifier x test: every remedy's mean, and the best mixaug recipe against the best free
    remedy (paired by seed)."""
    for path in sorted(OUT.glob("*.json")):
        res = pd.DataFrame(json.loads(path.read_text()))
        name = path.stem
        seeds = ", ".join(map(str, sorted(res.seed.unique())))
        print(f"\n### {name} ({'/'.join(map(str, PROFILES[name]))}), {metric}, seeds {seeds}\n")
        arms = list(dict.fromkeys(res["arm"]))
        if budget is not None:
            arms = [a for a in arms if not a.startswith("mixaug") or f" x{budget}" in a]
        if compact:
            arms = [a for a in arms if a in COMPACT or (a.startswith("mixaug") and not a.endswith("LA orig"))]
        print("| classifier | test | " + " | ".join(arms) + " | best mixaug − best free |")
        print("|---" * (len(arms) + 3) + "|")
        for (kind, test), g in res.groupby(["classifier", "test"], sort=False):
            piv = g.pivot_table(index="seed", columns="arm", values=metric)
            mean = piv.mean()
            free = [a for a in FREE if a in piv]  # every free remedy, shown or not
            mine = [a for a in arms if a.startswith("mixaug") and a in piv]
            bf, bm = max(free, key=mean.get), max(mine, key=mean.get)
            d, se, p = paired(piv[bm] - piv[bf])
            top = max(mean[a] for a in arms if a in piv)
            cells = [("**%.3f**" if mean[a] == top else "%.3f") % mean[a] if a in piv else "–" for a in arms]
            print(f"| {kind} | {test} | " + " | ".join(cells) + f" | {d:+.3f} ± {se:.3f} (p {p:.2g}; {bm} vs {bf}) |")


def decodes() -> None:
    """Per dataset and pairing, over the seeds: rows asked, decoded, rejected as duplicates (share), rows/s."""
    print("| dataset | pairing | rows asked | planned (decoded or cached) | duplicates | share | rows/s (mean) |")
    print("|---|---|---|---|---|---|---|")
    for name in PROFILES:
        for pairing in PAIRINGS:
            runs = [
                json.loads(p.read_text()) for p in sorted((OUT / "rows").glob(f"{name}.seed*.{pairing}.stats.json"))
            ]
            if not runs:
                continue
            asked = sum(r["requested"] for r in runs)
            decoded = sum(r["planned"] for r in runs)  # decoded or read from the decode cache
            dups = sum(r["rejected"].get("duplicate", 0) for r in runs)
            speed = np.mean([r["rows_per_s"] for r in runs])
            budget = max_budget(name, pairing)
            print(
                f"| {name} | {pairing} (≤ {budget} a row) | {asked} | {decoded} | {dups} | {dups / decoded:.1%} | {speed:.1f} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", choices=("rows", "score", "table", "decodes"))
    ap.add_argument("--datasets", default=",".join(PROFILES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--classifiers", default="tfidf,frozen")
    ap.add_argument("--budget", type=int, help="table: only this budget's mixaug arms")
    ap.add_argument("--metric", default="macro_f1", choices=("macro_f1", "tail_recall", "tail_precision"))
    ap.add_argument("--compact", action="store_true", help="table: the main remedies and mixaug's arms only")
    args = ap.parse_args()
    names = args.datasets.split(",")
    if args.stage == "rows":
        make_rows(names, args.seeds)
    elif args.stage == "score":
        score(names, args.seeds, args.classifiers.split(","))
    elif args.stage == "decodes":
        decodes()
    else:
        table(args.budget, args.metric, args.compact)


if __name__ == "__main__":
    main()
