"""`mixaug eval`: does the augmentation help, how readable and controllable is it, and how fast?

For each shots setting and seed, a stratified sample of TRAIN is augmented by every method with the same
number of new rows; a classifier trained on originals (+ new rows) is scored on TEST. mixaug rows come
from `pipeline.augment` itself. Also measured: inversion fidelity on TEST texts, controllability over λ,
manifold-intrusion rates and throughput.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path

import numpy as np
import pandas as pd

from .baselines import eda, eda_ops, embed_mixup, paraphrase
from .classifiers import CLASSIFIERS, Example, Scores, TestSet
from .config import DEFAULT_NEIGHBOURS, VARIANTS, EvalConfig, Method, parse_method
from .decode import DecodeStats
from .errors import MixaugError


def sample_shots(labels: Sequence, shots, seed: int, rare: Sequence = (), rare_shots: int = 3) -> np.ndarray:
    """Row indices: `shots` per class (all rows of a smaller class; `rare_shots` for the classes in `rare`),
    or every row for 'all'."""
    idx = np.arange(len(labels))
    if shots == "all" and not len(rare):
        return idx
    rng = np.random.default_rng([seed, 11])
    labels = np.asarray(labels, dtype=object)
    picked = []
    for cls in pd.unique(labels):
        rows = idx[labels == cls]
        k = rare_shots if cls in rare else (len(rows) if shots == "all" else int(shots))
        picked.extend(rng.choice(rows, size=min(k, len(rows)), replace=False).tolist())
    return np.array(sorted(picked))


def rare_classes(labels: Sequence, count: int, seed: int) -> list:
    """The `count` classes the imbalanced setting cuts for this seed (drawn at random, in first-seen order)."""
    classes = list(pd.unique(np.asarray(labels, dtype=object)))
    if not count:
        return []
    if count >= len(classes):
        raise MixaugError(f"--rare-classes {count} leaves no common class: TRAIN has {len(classes)} classes")
    picked = set(np.random.default_rng([seed, 17]).choice(len(classes), count, replace=False).tolist())
    return [c for k, c in enumerate(classes) if k in picked]


def _paired_p(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value (None when undefined: < 2 pairs, unpaired, or identical results)."""
    from scipy import stats

    if len(xs) != len(ys):  # e.g. a run without `none`: nothing to pair with
        return None
    d = np.asarray(xs) - np.asarray(ys)
    if len(d) < 2 or np.allclose(d, d[0]):
        return None  # the t statistic is undefined when every paired difference is the same
    return float(stats.ttest_rel(xs, ys).pvalue)


def run_eval(
    cfg: EvalConfig,
    stage: Callable[[str, int], Callable[[int], None]] | None = None,
    say: Callable[[str], None] = lambda m: None,
) -> dict:
    """Run every section and write report.md, plots, results.json and summary.json into cfg.out."""
    from .io import read_dataset, resolve_label_column, resolve_text_column
    from .pipeline import clean_texts, load_stack

    cfg.validate()
    stage = stage or (lambda name, total: lambda n: None)
    methods = [parse_method(m) for m in cfg.methods]
    train_df, test_df = read_dataset(cfg.train), read_dataset(cfg.test)
    text_col = resolve_text_column(train_df, cfg.text_column)
    label_col = resolve_label_column(train_df, cfg.label_column)
    if label_col is None:
        raise MixaugError("eval needs a label column in TRAIN (pass --label-column)")
    for df in (test_df,):
        resolve_text_column(df, text_col)
        resolve_label_column(df, label_col)
    train_df, _ = clean_texts(train_df, text_col)
    test_df, _ = clean_texts(test_df, text_col)
    if cfg.max_test and len(test_df) > cfg.max_test:
        test_df = test_df.sample(cfg.max_test, random_state=cfg.seed)
    train_df, test_df = train_df.reset_index(drop=True), test_df.reset_index(drop=True)
    train_texts, train_y = train_df[text_col].tolist(), train_df[label_col].tolist()
    test_texts, test_y = test_df[text_col].tolist(), test_df[label_col].tolist()

    stack = load_stack(cfg.checkpoint, cfg.device, cfg.precision)
    # TRAIN texts are encoded once, though every run re-augments a subset
    with _fresh_decodes(stack), stack.encoder.memoize():
        t0 = time.time()
        # fills the memo: each run encodes its subset from it (and encode_s is the cost of encoding TRAIN once)
        stack.encoder.encode(train_texts, cfg.batch_size, on_batch=stage("encode train", len(train_texts)))
        encode_s = time.time() - t0
        test_emb = stack.encoder.encode(test_texts, cfg.batch_size, on_batch=stage("encode test", len(test_texts)))

        def embed(texts: Sequence[str]) -> np.ndarray:
            return stack.encoder.encode(texts, cfg.batch_size)

        test = TestSet(test_texts, test_y, test_emb)

        runs: list[dict] = []
        intrusion_rows: list[dict] = []
        timing: dict[str, list[float]] = {}
        mixaug_decode = DecodeStats()  # the default arm's decoding, for the decode ceiling comparison
        shared: dict = {}  # what arms load once per eval (the paraphrase LM)
        settings = [(s, seed) for s in cfg.shots for seed in range(cfg.seeds if s != "all" else min(cfg.seeds, 1) or 1)]
        advance = stage("accuracy runs", len(settings) * len(methods))
        journal = RunJournal(Path(cfg.out) / JOURNAL, _journal_key(cfg))
        if journal.done:
            say(f"resuming: {len(journal.done)} of {len(settings) * len(methods)} runs done in {journal.path}")
        for shots, seed in settings:
            rare = rare_classes(train_y, cfg.rare_classes, cfg.seed + seed)
            idx = sample_shots(train_y, shots, cfg.seed + seed, rare, cfg.rare_shots)
            sub = Subset(
                [train_texts[i] for i in idx],
                [train_y[i] for i in idx],
                cfg.seed + seed,
                rare,
                cfg,
                stack,
                embed,
                shared,
            )
            for m in methods:
                kept = journal.get([shots, seed, m.name])
                if kept is None:  # else finished by an interrupted run of the same command: every arm is seeded
                    kept = _run_arm(m, sub, test, shots, seed)
                    journal.add([shots, seed, m.name], kept)
                runs += kept["runs"]
                intrusion_rows += kept["intrusion"]
                if kept["rate"] is not None:
                    timing.setdefault(m.name, []).append(kept["rate"])
                if kept["decode"] and m.name == "mixaug":
                    mixaug_decode.add(DecodeStats(**kept["decode"]))
                advance(1)
            done = runs[-len(methods) * len(cfg.classifiers) :]
            say(
                f"shots={shots} seed={seed}: "
                + ", ".join(
                    f"{r['classifier']}/{r['method']} {r['macro_f1' if rare else 'accuracy']:.3f}" for r in done
                )
            )

        summary = _summarise(runs, timing)
        results = {
            "config": asdict(cfg),
            "train_rows": len(train_df),
            "test_rows": len(test_df),
            "classes": sorted(map(str, set(train_y))),
            "runs": runs,
            "summary": summary,
            "fidelity": _fidelity(stack, test_texts, cfg, stage),
            "controllability": _controllability(stack, test_texts, test_y, cfg, stage),
            "intrusion": _intrusion_table(intrusion_rows),
            "speed": {
                "new_rows_per_s": {k: round(float(np.mean(v)), 3) for k, v in timing.items()},
                "encode_sentences_per_s": round(len(train_texts) / max(encode_s, 1e-9), 1),
                **_decode_speed(stack, test_emb, mixaug_decode, cfg),
                "peak_rss_mb": _peak_rss_mb(),
            },
            "eda_ops": list(eda_ops()),
        }
        write_outputs(results, Path(cfg.out))
        journal.remove()
    return results


# -- the arms ---------------------------------------------------------------------------------------------
@dataclass
class Subset:
    """What every arm gets for one (shots, seed) run: the sampled TRAIN rows and the shared tools."""

    texts: list
    labels: list
    seed: int
    rare: list  # the imbalanced setting's cut classes ([] when balanced)
    cfg: EvalConfig
    stack: object
    embed: Callable[[Sequence[str]], np.ndarray]
    shared: dict

    @cached_property
    def quota(self) -> dict | None:
        """Imbalanced: new rows per class, rare classes first up to the largest (capped by max_new_rows)."""
        if not self.rare:
            return None
        from .mix import class_quota

        quota = class_quota(self.labels, 1.0)
        if sum(quota.values()) > self.cfg.max_new_rows:
            quota = class_quota(self.labels, 1.0, self.cfg.max_new_rows)
        return quota

    @property
    def n_new(self) -> int:
        quota = self.quota
        if quota is not None:
            return sum(quota.values())
        return min(self.cfg.max_new_rows, max(1, int(round(self.cfg.ratio * len(self.texts)))))

    @property
    def originals(self) -> list[Example]:
        return [Example(t, t, 1.0, y, y) for t, y in zip(self.texts, self.labels)]

    def per_class(self, make: Callable[[list, list, int, int], tuple[list, list]]) -> list[Example]:
        """make(texts, labels, n, seed) -> (texts, labels): over all rows when balanced; imbalanced, once per
        class with new rows to make, on that class's rows alone."""
        if self.quota is None:
            texts, labels = make(self.texts, self.labels, self.n_new, self.seed)
        else:
            texts, labels = [], []
            for k, (cls, n) in enumerate(self.quota.items()):
                rows = [t for t, y in zip(self.texts, self.labels) if y == cls]
                if n and rows:
                    t, y = make(rows, [cls] * len(rows), n, self.seed + 7919 * k)
                    texts, labels = texts + t, labels + y
        return [Example(t, t, 1.0, y, y) for t, y in zip(texts, labels)]

    def pairs(self, plan: pd.DataFrame) -> list[Example]:
        """Rows that mix two originals' features (a classifier's own space) with the λ-interpolated label."""
        t, y = self.texts, self.labels
        return [Example(t[a], t[b], float(l), y[a], y[b]) for a, b, l in zip(plan.a, plan.b, plan.lam)]


@dataclass
class ArmRows:
    """An arm's training rows for the classifiers (originals included) and what it measured making them."""

    rows: list[Example]
    intrusion: list[dict] = field(default_factory=list)
    decode: DecodeStats | None = None


def arm_none(m: Method, sub: Subset) -> ArmRows:
    return ArmRows(sub.originals)


def arm_class_weights(m: Method, sub: Subset) -> ArmRows:
    """No new rows: each original weighted n / (classes x its class's size), scikit-learn's 'balanced'."""
    from collections import Counter

    counts = Counter(sub.labels)
    w = {c: len(sub.labels) / (len(counts) * k) for c, k in counts.items()}
    return ArmRows([replace(e, weight=w[e.label_a]) for e in sub.originals])


def arm_oversample(m: Method, sub: Subset) -> ArmRows:
    """Random oversampling (imbalanced-learn's RandomOverSampler): copies of rows drawn with replacement."""

    def copies(texts, labels, n, seed):
        pick = np.random.default_rng([seed, 13]).integers(0, len(texts), n)
        return [texts[i] for i in pick], [labels[i] for i in pick]

    return ArmRows(sub.originals + sub.per_class(copies))


def arm_eda(m: Method, sub: Subset) -> ArmRows:
    return ArmRows(sub.originals + sub.per_class(eda))


def arm_paraphrase(m: Method, sub: Subset) -> ArmRows:
    from .models import DEFAULT_LM, load_lm

    if "para_lm" not in sub.shared:
        sub.shared["para_lm"] = load_lm(DEFAULT_LM, sub.stack.device)[:2]

    def para(texts, labels, n, seed):
        return paraphrase(texts, labels, n, seed, *sub.shared["para_lm"], batch_size=sub.cfg.batch_size)

    return ArmRows(sub.originals + sub.per_class(para))


def arm_embed_mixup(m: Method, sub: Subset) -> ArmRows:
    """Mixup of two rows' features with the mixed label: random pairs; imbalanced, pairs within a rare class."""
    from .mix import plan_pairs

    if sub.quota is None:
        a, b, lam = embed_mixup(len(sub.texts), sub.n_new, sub.seed)
        return ArmRows(sub.originals + sub.pairs(pd.DataFrame({"a": a, "b": b, "lam": lam})))
    return ArmRows(sub.originals + sub.pairs(plan_pairs(sub.labels, 0, "intra", 0.4, sub.seed, quota=sub.quota)))


def arm_smote(m: Method, sub: Subset) -> ArmRows:
    """SMOTE (Chawla et al.; imbalanced-learn's defaults): a row of the class and one of its 5 nearest
    same-class rows in the encoder's space, mixed at a uniform gap (λ ~ Beta(1, 1)). Each classifier mixes the
    two rows in its own feature space (for logreg that is SMOTE on the frozen embeddings exactly)."""
    from .mix import plan_pairs

    emb = sub.embed(sub.texts)
    plan = plan_pairs(
        sub.labels, sub.n_new, "neighbours", 1.0, sub.seed, quota=sub.quota, emb=emb, neighbours=DEFAULT_NEIGHBOURS
    )
    return ArmRows(sub.originals + sub.pairs(plan))


def arm_mixaug(m: Method, sub: Subset) -> ArmRows:
    """`pipeline.augment` itself on the subset (imbalanced: with --balance equal, the same quota)."""
    from .pipeline import augment, forget_stack

    cfg, stack = sub.cfg, sub.stack
    frame = pd.DataFrame({"text": sub.texts, "label": sub.labels})
    before = replace(stack.inverter.totals)
    out = augment(
        frame,
        text_column="text",
        label_column="label",
        num_augmented=sub.n_new,
        balance="equal" if sub.quota is not None else None,
        pairing=m.pairing,
        label_policy=m.policy,
        seed=sub.seed,
        only_new=True,
        checkpoint=cfg.checkpoint,
        device=cfg.device,
        batch_size=cfg.batch_size,
        precision=cfg.precision,
        task_steps=cfg.finetune_steps,
        intrusion=m.intrusion,
        **VARIANTS.get(m.variant, {}),
    )
    if m.variant in ("adapt", "task"):  # its stack was adapted to this subset alone: free it
        forget_stack(out.attrs["mixaug_stats"]["checkpoint"])
    decode = stack.inverter.totals.since(before)
    stats = out.attrs["mixaug_stats"]  # the label policy and pairing augment resolved
    if stats["label_policy"] == "soft":  # a readable sentence with the λ-interpolated label distribution
        new = [
            Example(t, t, float(l), a, b)
            for t, l, a, b in zip(
                out["text"], out["mixaug_lambda"], out["mixaug_parent_a_label"], out["mixaug_parent_b_label"]
            )
        ]
    else:
        new = [Example(t, t, 1.0, y, y) for t, y in zip(out["text"], out["label"])]
    intrusion = []
    if stats["label_policy"] == "hard" and m.intrusion == "keep":  # dropped rows would hide the rate
        intrusion = [
            {
                "method": m.name,
                "pairing": stats["pairing"],
                "lambda": float(l),
                "intrusion": bool(i),
                "confidence": float(c),
            }
            for l, i, c in zip(out["mixaug_lambda"], out["mixaug_intrusion"], out["mixaug_label_confidence"])
        ]
    return ArmRows(sub.originals + new, intrusion, decode)


ARMS: dict[str, Callable[[Method, Subset], ArmRows]] = {
    "none": arm_none,
    "class-weights": arm_class_weights,
    "oversample": arm_oversample,
    "eda": arm_eda,
    "embed-mixup": arm_embed_mixup,
    "smote": arm_smote,
    "paraphrase": arm_paraphrase,
    "mixaug": arm_mixaug,
}


def _run_arm(m: Method, sub: Subset, test: TestSet, shots, seed: int) -> dict:
    """One arm on one subset, scored by every classifier: the journal's record of it."""
    started = time.time()
    made = ARMS[m.kind](m, sub)
    seconds = time.time() - started
    n_new = len(made.rows) - len(sub.texts)
    rate = n_new / max(seconds, 1e-9) if n_new > 0 else None
    runs = []
    for classifier in sub.cfg.classifiers:
        score = CLASSIFIERS[classifier]
        if classifier == "finetune":
            score = partial(score, steps=sub.cfg.finetune_steps)
        got: Scores = score(made.rows, test, sub.stack.encoder, sub.embed, sub.seed)
        rare = [got.recall[str(c)] for c in sub.rare if str(c) in got.recall]
        runs.append(
            {
                "classifier": classifier,
                "method": m.name,
                "shots": shots,
                "seed": seed,
                "accuracy": got.accuracy,
                "macro_f1": got.macro_f1,
                "rare_recall": float(np.mean(rare)) if rare else None,
                "rare_classes": [str(c) for c in sub.rare],
                "new_rows": n_new,
                "seconds": round(seconds, 2),
            }
        )
    return {
        "runs": runs,
        "intrusion": [dict(r, shots=shots) for r in made.intrusion],
        "rate": rate,
        "decode": asdict(made.decode) if made.decode is not None else None,
    }


JOURNAL = "runs.partial.jsonl"


@contextmanager
def _fresh_decodes(stack):
    """Speed is part of the report: decode afresh (in memory only), never from an earlier run's cache; within
    the run, mixaug:parent/soft reuse the decodes of the same plan under the hard policy. The stack is shared
    with the process's other calls (a notebook's `augment`), so its own cache comes back afterwards."""
    from .pipeline import DecodeCache

    saved, stack.decoded = stack.decoded, DecodeCache(None)
    try:
        yield
    finally:
        stack.decoded = saved


def _journal_key(cfg: EvalConfig) -> str:
    """What a finished run depends on: the settings (not where the report goes or the batch size, which never
    changes a result), TRAIN's and TEST's bytes, and mixaug's version."""
    import hashlib

    from . import __version__

    h = hashlib.sha256()
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "batch_size")}
    h.update(json.dumps([settings, __version__], sort_keys=True, default=str).encode())
    for path in (cfg.train, cfg.test):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class RunJournal:
    """Each finished (shots, seed, method) run of `mixaug eval`, appended as one JSON line the moment it is
    done, so an interrupted eval loses at most the run in progress and the same command resumes it. A journal
    written under other settings or data is started afresh; a torn last line is ignored."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key
        self.done: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("key") == key and "run" in entry:
                    self.done[json.dumps(entry["run"])] = entry["result"]

    def get(self, run: list) -> dict | None:
        """The result kept for this run, if a run of the same command finished it."""
        return self.done.get(json.dumps(run))

    def add(self, run: list, result: dict) -> None:
        from .io import append_named

        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": self.key, "run": run, "result": result}, default=str) + "\n"
        try:
            if not self.done and self.path.exists():  # another command's journal: start afresh
                self.path.unlink()
            append_named(self.path, line.encode())
        except OSError as exc:
            raise MixaugError(f"cannot write the run journal {self.path}: {exc.strerror or exc}") from None
        self.done[json.dumps(run)] = result

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def summary_from_runs(runs: list[dict], rates: dict[str, float]) -> list[dict]:
    """Recompute the summary from a results.json's per-run records and its measured rows/s per method."""
    return _summarise(runs, {m: [r] for m, r in rates.items()})


def _summarise(runs: list[dict], timing: dict) -> list[dict]:
    df = pd.DataFrame(runs)
    if "classifier" not in df:  # a results.json from before classifiers were per run
        df["classifier"] = "logreg"
    out = []
    for (classifier, method, shots), grp in df.groupby(["classifier", "method", "shots"], sort=False):
        base = df[(df.classifier == classifier) & (df.method == "none") & (df.shots == shots)].sort_values("seed")
        mine = grp.sort_values("seed")
        p = None if method == "none" else _paired_p(mine.accuracy.tolist(), base.accuracy.tolist())
        p_f1 = None if method == "none" else _paired_p(mine.macro_f1.tolist(), base.macro_f1.tolist())
        rare = grp["rare_recall"].dropna() if "rare_recall" in grp else pd.Series(dtype=float)
        out.append(
            {
                "classifier": classifier,
                "method": method,
                "shots": shots,
                "accuracy_mean": round(float(grp.accuracy.mean()), 4),
                "accuracy_std": round(float(grp.accuracy.std(ddof=1)) if len(grp) > 1 else 0.0, 4),
                "macro_f1_mean": round(float(grp.macro_f1.mean()), 4),
                "macro_f1_std": round(float(grp.macro_f1.std(ddof=1)) if len(grp) > 1 else 0.0, 4),
                "p_value_vs_none": None if p is None else round(p, 4),
                "macro_f1_p_vs_none": None if p_f1 is None else round(p_f1, 4),
                "rare_recall_mean": round(float(rare.mean()), 4) if len(rare) else None,
                "new_rows_per_s": round(float(np.mean(timing[method])), 3) if method in timing else None,
            }
        )
    return out


def _decode_speed(stack, emb: np.ndarray, run: DecodeStats, cfg: EvalConfig) -> dict:
    """The default arm's useful tokens/s (tokens it kept, per second of decoding) next to the decode
    ceiling measured now, at the same batch size, with rows as long as the arm's were on average."""
    if not run.rows or not len(emb):
        return {}
    mean_tokens = run.tokens / run.rows
    try:
        top = stack.inverter.decode_ceiling(emb, round(mean_tokens), cfg.batch_size)
    except MixaugError:
        top = None
    return {
        "batch_size": cfg.batch_size,
        "precision": stack.inverter.precision,
        "mixaug_decode_rows": run.rows,
        "mixaug_mean_tokens_per_row": round(mean_tokens, 1),
        "mixaug_useful_tokens_per_s": round(run.tokens_per_s, 1),
        "decode_ceiling_tokens_per_s": None if top is None else round(top, 1),
        "useful_to_ceiling": None if top is None else round(run.tokens_per_s / top, 3),
    }


def _fidelity(stack, texts: Sequence[str], cfg: EvalConfig, stage) -> dict:
    from .metrics import reconstruction_report
    from .pipeline import invert

    sample = list(texts[: cfg.fidelity_n])
    if not sample:
        return {}
    started = time.time()
    out = invert(
        pd.DataFrame({"text": sample}), "text", cfg.checkpoint, cfg.device, cfg.batch_size, precision=cfg.precision
    )
    seconds = time.time() - started
    recon = out["reconstruction"].tolist()
    cos = out["fidelity"].to_numpy(dtype=float)
    report = reconstruction_report(sample, recon, cos)
    tokens = sum(len(stack.inverter.tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in recon)
    report["decode_tokens_per_s"] = round(tokens / max(seconds, 1e-9), 1)  # includes encode + re-encode
    report["batch_size"] = cfg.batch_size
    report["examples"] = [{"original": a, "reconstruction": b} for a, b in list(zip(sample, recon))[:5]]
    return report


def _controllability(stack, texts: Sequence[str], labels: Sequence, cfg: EvalConfig, stage) -> dict:
    """For random pairs and λ in 0.1..0.9: cos(decoded, a) - cos(decoded, b), and its Spearman ρ with λ."""
    from scipy.stats import spearmanr

    from .pipeline import mix_texts

    rng = np.random.default_rng([cfg.seed, 5])
    lams = [round(0.1 * i, 1) for i in range(1, 10)]
    rows = []
    advance = stage("controllability", cfg.control_pairs)
    for _ in range(cfg.control_pairs):
        a, b = rng.choice(len(texts), 2, replace=False)
        for r in mix_texts(texts[a], texts[b], lams, cfg.checkpoint, cfg.device):
            rows.append({"lambda": r["lambda"], "margin": r["cos_a"] - r["cos_b"], "text": r["text"]})
        advance(1)
    if not rows:
        return {}
    df = pd.DataFrame(rows)
    rho = spearmanr(df["lambda"], df["margin"]).statistic
    curve = df.groupby("lambda")["margin"].agg(["mean", "std"]).reset_index()
    return {
        "pairs": cfg.control_pairs,
        "spearman": round(float(rho), 4),
        "curve": [
            {
                "lambda": float(r["lambda"]),
                "margin_mean": round(float(r["mean"]), 4),
                "margin_std": round(float(r["std"]), 4),
            }
            for _, r in curve.iterrows()
        ],
    }


def _intrusion_table(rows: list[dict]) -> list[dict]:
    if not rows:
        return []
    """Per arm (each hard-label arm decodes its own rows) and pairing: the rate by λ bucket, then overall."""
    df = pd.DataFrame(rows)
    df["bucket"] = pd.cut(df["lambda"], [0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0], include_lowest=True).astype(str)
    out = []
    for by in (["method", "pairing", "bucket"], ["method", "pairing"]):
        for key, grp in df.groupby(by, sort=True):
            out.append(
                {
                    "method": key[0],
                    "pairing": key[1],
                    "lambda_bucket": key[2] if len(key) > 2 else "all",
                    "n": int(len(grp)),
                    "intrusion_rate": round(float(grp.intrusion.mean()), 4),
                    "label_confidence": round(float(grp.confidence.mean()), 4) if "confidence" in grp else None,
                }
            )
    return out


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# -- outputs -------------------------------------------------------------------------------------
def write_outputs(results: dict, out: Path) -> None:
    """The files of the --out folder, named by mixaug: a link planted at one is replaced, not written through."""
    from .io import write_named

    out.mkdir(parents=True, exist_ok=True)
    write_named(out / "results.json", (json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n").encode())
    write_named(out / "summary.json", (json.dumps(results["summary"], indent=2, default=str) + "\n").encode())
    plots = _plots(results, out)
    write_named(out / "report.md", render_report(results, plots).encode())


def _save_plot(fig, path: Path) -> None:
    from .io import named_file

    with named_file(path) as fh:
        fig.savefig(fh, format="png", dpi=110)


def _plots(results: dict, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    summary = pd.DataFrame(results["summary"])
    if not summary.empty:
        fig, ax = plt.subplots(figsize=(9, 4))
        if summary.get("classifier", pd.Series(dtype=object)).nunique() > 1:  # one bar per classifier/method
            summary = summary.assign(method=summary["classifier"] + "/" + summary["method"])
        shots = list(dict.fromkeys(summary["shots"].astype(str)))
        methods = list(dict.fromkeys(summary["method"]))
        width = 0.8 / max(1, len(methods))
        for j, m in enumerate(methods):
            sub = summary[summary.method == m].set_index(summary[summary.method == m]["shots"].astype(str))
            xs = [i + j * width for i, s in enumerate(shots) if s in sub.index]
            ax.bar(
                xs,
                [sub.loc[s, "accuracy_mean"] for s in shots if s in sub.index],
                width,
                yerr=[sub.loc[s, "accuracy_std"] for s in shots if s in sub.index],
                label=m,
                capsize=2,
            )
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(shots))], [f"shots={s}" for s in shots])
        ax.set_ylabel("test accuracy")
        ax.set_ylim(max(0, summary.accuracy_mean.min() - 0.15), min(1, summary.accuracy_mean.max() + 0.08))
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        _save_plot(fig, out / "accuracy.png")
        plt.close(fig)
        made.append("accuracy.png")
    intr = pd.DataFrame(results["intrusion"])
    if not intr.empty:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if "method" not in intr:  # a results.json from before the table was per arm
            intr["method"] = "mixaug"
        for (method, pairing), grp in intr[intr.lambda_bucket != "all"].groupby(["method", "pairing"]):
            ax.plot(grp.lambda_bucket, grp.intrusion_rate, marker="o", label=f"{method} ({pairing})")
        ax.set_xlabel("λ bucket (weight of parent a)")
        ax.set_ylabel("intrusion rate")
        ax.legend()
        fig.tight_layout()
        _save_plot(fig, out / "intrusion.png")
        plt.close(fig)
        made.append("intrusion.png")
    ctrl = results.get("controllability") or {}
    if ctrl.get("curve"):
        c = pd.DataFrame(ctrl["curve"])
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.errorbar(c["lambda"], c["margin_mean"], yerr=c["margin_std"], marker="o", capsize=3)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("λ")
        ax.set_ylabel("cos(decoded, a) − cos(decoded, b)")
        ax.set_title(f"Spearman ρ = {ctrl['spearman']}")
        fig.tight_layout()
        _save_plot(fig, out / "controllability.png")
        plt.close(fig)
        made.append("controllability.png")
    return made


def _speed_ratio(rates: dict) -> str:
    if "mixaug" in rates and "paraphrase" in rates and rates["paraphrase"]:
        return (
            f"mixaug (default settings) makes {rates['mixaug']} new rows/s vs paraphrase {rates['paraphrase']}: "
            f"ratio {rates['mixaug'] / rates['paraphrase']:.2f}x, same rows, same run.\n"
        )
    return ""


def _ceiling_line(speed: dict) -> str:
    if speed.get("decode_ceiling_tokens_per_s") is None:
        return ""
    return (
        f"Decode engine ({speed['precision']}, {speed['batch_size']} rows at once): mixaug's decoding kept "
        f"{speed['mixaug_useful_tokens_per_s']} tokens/s ({speed['mixaug_decode_rows']} rows, "
        f"{speed['mixaug_mean_tokens_per_row']} tokens each on average); a plain KV-cached greedy loop over one "
        f"full batch of rows that long, measured in the same run: {speed['decode_ceiling_tokens_per_s']} tokens/s "
        f"(ratio {speed['useful_to_ceiling']}).\n"
    )


# What md_text changes: HTML's three (no tag, so no <img> that fetches); every character of Markdown's inline
# syntax (links, images, code, emphasis, table cells, headings) behind a backslash; line breaks (a table row is
# one line) as ↵; other control characters (C0, C1) and bidi overrides as \xNN, so a text cannot reorder or hide
# what is around it.
_MD_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_MD_HIDDEN = [*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_MD_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in _MD_HIDDEN},
    **{ord(c): "↵" for c in _MD_LINE_BREAKS},
    ord("\t"): " ",
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    **{ord(c): "\\" + c for c in "\\`*_~[]()!|#{}"},
}


def md_text(value) -> str:
    """Text from the data (a TEST text, its reconstruction, a file name) as inert Markdown: shown as the
    characters it holds, never as markup a previewer acts on (an image or HTML tag it fetches, a link)."""
    return str(value).replace("\r\n", "\n").translate(_MD_ESCAPES)


def _md_table(rows: list[dict], cols: list[str]) -> str:
    """A Markdown table of mixaug's own columns; every cell goes through md_text."""
    if not rows:
        return "_(none)_\n"
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else md_text(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


CLASSIFIER_WORDS = {
    "logreg": "logistic regression on frozen encoder embeddings",
    "tfidf": "TF-IDF word 1–2-grams + logistic regression",
    "finetune": "the encoder fine-tuned with a linear head, the same number of optimizer steps for every method",
}


def _classifier_words(cfg: dict) -> str:
    names = cfg.get("classifiers") or [cfg.get("classifier", "logreg")]
    return "; ".join(f"{c} ({CLASSIFIER_WORDS[c]})" for c in names)


def render_report(results: dict, plots: list[str]) -> str:
    cfg = results["config"]
    parts = [
        "# mixaug eval report\n",
        f"TRAIN {md_text(cfg['train'])} ({results['train_rows']} rows), TEST {md_text(cfg['test'])} "
        f"({results['test_rows']} rows), "
        f"{len(results['classes'])} classes; seeds {cfg['seeds']}; classifiers: {_classifier_words(cfg)}; "
        f"new rows per run = min({cfg['max_new_rows']}, {cfg['ratio']} x originals).\n",
        "## 1-2. Downstream accuracy by method\n",
        _md_table(
            results["summary"],
            [
                "classifier",
                "method",
                "shots",
                "accuracy_mean",
                "accuracy_std",
                "macro_f1_mean",
                "macro_f1_std",
                "p_value_vs_none",
                "macro_f1_p_vs_none",
                "rare_recall_mean",
                "new_rows_per_s",
            ],
        ),
        f"EDA ops that ran: {', '.join(results['eda_ops'])}"
        + (
            " (synonyms from WordNet 3.0).\n"
            if "synonym_replacement" in results["eda_ops"]
            else " (no WordNet here).\n"
        ),
        "## 3. Inversion fidelity and controllability\n",
        _md_table(
            [{k: v for k, v in results["fidelity"].items() if k != "examples"}],
            ["n", "cosine", "token_f1", "word_f1", "bleu", "exact"],
        ),
        _md_table(results["fidelity"].get("examples", []), ["original", "reconstruction"]),
        f"Controllability (cos to a − cos to b over λ, {results['controllability'].get('pairs', 0)} pairs): "
        f"Spearman ρ = {results['controllability'].get('spearman')}\n",
        _md_table(results["controllability"].get("curve", []), ["lambda", "margin_mean", "margin_std"]),
        "## 4. Manifold intrusion (hard label neither parent's)\n",
        _md_table(
            results["intrusion"], ["method", "pairing", "lambda_bucket", "n", "intrusion_rate", "label_confidence"]
        ),
        "## 5. Speed\n",
        _md_table(
            [{"method": k, "new_rows_per_s": v} for k, v in results["speed"]["new_rows_per_s"].items()],
            ["method", "new_rows_per_s"],
        ),
        (
            "mixaug:parent and mixaug:soft label the sentences already decoded for the same plan under the hard "
            "policy (same pairs, same λ), so their rows/s measure labelling only; the decoding cost is in `mixaug`.\n"
            if "mixaug" in results["config"].get("methods", [])
            else ""
        ),
        f"Encoder: {results['speed']['encode_sentences_per_s']} sentences/s; LM decode (inversion, batch "
        f"{results['fidelity'].get('batch_size')}): {results['fidelity'].get('decode_tokens_per_s')} tokens/s; "
        f"peak RSS {results['speed']['peak_rss_mb']} MB.\n",
        _ceiling_line(results["speed"]),
        _speed_ratio(results["speed"]["new_rows_per_s"]),
    ]
    parts += [f"![{p}]({p})\n" for p in plots]
    return "\n".join(parts)
