"""`run_eval`: every shots setting and seed, each arm scored by each classifier, then the fidelity,
controllability, intrusion and speed sections."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MixaugError
from ..inversion.decode import DecodeStats
from .arms import Subset, _run_arm, rare_classes, sample_shots
from .baselines import eda_ops
from .classifiers import TestSet
from .config import EvalConfig, parse_method
from .journal import JOURNAL, RunJournal, _fresh_decodes, _journal_key
from .outputs import write_outputs


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
    from ..stacks import load_stack

    cfg.validate()
    stage = stage or (lambda name, total: lambda n: None)
    methods = [parse_method(m) for m in cfg.methods]
    train_df, test_df, text_col, label_col = _tables(cfg)
    train_texts, train_y = train_df[text_col].tolist(), train_df[label_col].tolist()
    test_texts, test_y = test_df[text_col].tolist(), test_df[label_col].tolist()

    stack = load_stack(cfg.checkpoint, cfg.device, cfg.precision)
    # TRAIN texts are encoded once, though every run re-augments a subset
    with _fresh_decodes(stack), stack.encoder.memoize():
        t0 = time.time()
        # fills the memo: each run encodes its subset from it (and encode_s is the cost of encoding TRAIN once)
        stack.encoder.encode(train_texts, cfg.decode_batch, on_batch=stage("encode train", len(train_texts)))
        encode_s = time.time() - t0
        test_emb = stack.encoder.encode(test_texts, cfg.decode_batch, on_batch=stage("encode test", len(test_texts)))

        def embed(texts: Sequence[str]) -> np.ndarray:
            return stack.encoder.encode(texts, cfg.decode_batch)

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
                text_col,
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
        top = stack.inverter.decode_ceiling(emb, round(mean_tokens), cfg.decode_batch)
    except MixaugError:
        top = None
    return {
        "batch_size": cfg.decode_batch,
        "precision": stack.inverter.precision,
        "mixaug_decode_rows": run.rows,
        "mixaug_mean_tokens_per_row": round(mean_tokens, 1),
        "mixaug_useful_tokens_per_s": round(run.tokens_per_s, 1),
        "decode_ceiling_tokens_per_s": None if top is None else round(top, 1),
        "useful_to_ceiling": None if top is None else round(run.tokens_per_s / top, 3),
    }


def _fidelity(stack, texts: Sequence[str], cfg: EvalConfig, stage) -> dict:
    from ..metrics import reconstruction_report
    from ..pipeline import invert

    sample = list(texts[: cfg.fidelity_n])
    if not sample:
        return {}
    started = time.time()
    out = invert(
        pd.DataFrame({"text": sample}), "text", cfg.checkpoint, cfg.device, cfg.decode_batch, precision=cfg.precision
    )
    seconds = time.time() - started
    recon = out["reconstruction"].tolist()
    cos = out["fidelity"].to_numpy(dtype=float)
    report = reconstruction_report(sample, recon, cos)
    tokens = sum(len(stack.inverter.tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in recon)
    report["decode_tokens_per_s"] = round(tokens / max(seconds, 1e-9), 1)  # includes encode + re-encode
    report["batch_size"] = cfg.decode_batch
    report["examples"] = [{"original": a, "reconstruction": b} for a, b in list(zip(sample, recon))[:5]]
    return report


def _controllability(stack, texts: Sequence[str], labels: Sequence, cfg: EvalConfig, stage) -> dict:
    """For random pairs and λ in 0.1..0.9: cos(decoded, a) - cos(decoded, b), and its Spearman ρ with λ."""
    from scipy.stats import spearmanr

    from ..pipeline import mix_texts

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


def _tables(cfg: EvalConfig):
    """(TRAIN, TEST, text column, label column): both files read, their text and label columns checked (TEST
    takes TRAIN's), rows without text dropped, TEST cut to cfg.max_test rows; rows numbered from 0."""
    from ..data.columns import resolve_label_column, resolve_text_column
    from ..data.read import read_dataset
    from ..inputs import clean_texts

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
    return train_df.reset_index(drop=True), test_df.reset_index(drop=True), text_col, label_col
