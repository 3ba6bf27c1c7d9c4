"""`augment`, `invert`, `mix`: the Python API the CLI is a thin layer over, and the run itself.

Stages run in order (read -> encode -> mix -> invert -> re-encode -> label -> filter -> write); this module
only wires them. A run's inputs are prepared and checked by `inputs` (once: `augment_prepared` takes them
prepared), its models come from `stacks` (loaded once per checkpoint and device, reused across calls).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from . import stacks
from .config import DEFAULT_DECODE_BATCH, DEFAULT_PRECISION, DEFAULT_SEARCH_WIDTH, AugmentConfig
from .data.columns import resolve_text_column
from .data.provenance import build_output
from .encode import cosine_rows
from .errors import MixaugError
from .filter import Filter
from .inputs import Prepared, as_table, clean_texts, prepare, run_config
from .inversion.candidates import Stack, decode_candidates, decode_summary
from .label import Labeller, assign_labels
from .mix import NEEDS_EMBEDDINGS, class_centres, class_share, mix, plan_pairs

Progress = Callable[[str, int], Callable[[int], None]]  # (stage, total) -> advance(n)


def no_progress(stage: str, total: int) -> Callable[[int], None]:
    return lambda n: None


def augment(
    df: pd.DataFrame, config: AugmentConfig | None = None, progress: Progress | None = None, **overrides
) -> pd.DataFrame:
    """Augment a labelled (or unlabelled) DataFrame by inverted mixup.

    Returns the output table (originals first unless only_new, then new rows with `mixaug_*`
    provenance); the run's statistics are in `result.attrs["mixaug_stats"]`.
    """
    cfg = run_config(config, overrides)
    started = time.time()
    df = as_table(df)
    return augment_prepared(df, prepare(df, cfg), cfg, progress, started)


def augment_prepared(
    df: pd.DataFrame, p: Prepared, cfg: AugmentConfig, progress: Progress | None = None, started: float | None = None
) -> pd.DataFrame:
    """`augment` on inputs already prepared and checked: `df` as `as_table` gives it, `p = prepare(df, cfg)`,
    `cfg` from `run_config`. The file path checks its input before any work and passes it on here, once."""
    progress = progress or no_progress
    started = time.time() if started is None else started
    stack, decoder, task = stacks.load_for(p, cfg)
    try:
        emb = stack.encoder.encode(p.texts, batch_size=cfg.decode_batch, on_batch=progress("encode", len(p.texts)))
        g = generate(p, emb, cfg, stack, decoder, progress, task)
    finally:
        if decoder is not None:
            decoder.close()
    result = build_output(df, new_rows_frame(g.rows, p, cfg), p.text_col, p.label_col, cfg.only_new)
    result.attrs["mixaug_stats"] = run_stats(p, g, cfg, stack, len(df), started)
    return result


def stats_json_bytes(stats: dict) -> bytes:
    """The --stats-json file's bytes."""
    return (json.dumps(stats, indent=2, ensure_ascii=False, default=str) + "\n").encode()


GENERATE_BLOCK = 16384  # plan rows mixed, decoded and labelled at a time: memory for a block, not the plan


NEW_ROW_FIELDS = (
    "text",
    "label",
    "parent_a",
    "parent_b",
    "parent_a_label",
    "parent_b_label",
    "lambda",
    "fidelity",
    "label_confidence",
    "intrusion",
)


@dataclass
class Generated:
    """What a run made: the accepted new rows (dicts of NEW_ROW_FIELDS) and how it got them."""

    rows: list[dict]
    planned: int
    filter: Filter
    decode: dict


def generate(
    p: Prepared, emb: np.ndarray, cfg: AugmentConfig, stack: Stack, decoder, progress: Progress, task=None
) -> Generated:
    """The pipeline's heart, between reading and writing: plan pairs, mix `emb` (the rows' embeddings, an
    array or a memmap), decode, label (with the task model's head if given, else a logistic regression on
    `emb`), filter, over up to max_rounds rounds."""
    decoded_before = replace((decoder or stack.inverter).totals)
    labeller = None
    if p.labels is not None:
        labeller = task if task is not None else Labeller(emb, p.labels, cfg.seed)
    filt = Filter(p.texts, cfg.min_fidelity, drop_intrusions=cfg.intrusion == "drop" and p.labels is not None)
    plan_labels = p.plan_labels
    centres = class_centres(emb, plan_labels) if p.pairing == "transfer" else None

    accepted: list[dict] = []
    made: Counter = Counter()  # --balance: accepted rows per planned class (parent a's)
    planned = 0
    for round_ in range(cfg.max_rounds):
        need = p.wanted - len(accepted)
        if need <= 0:
            break
        n_plan = need if round_ == 0 else math.ceil(need * 1.5) + 2
        quota = None
        if p.quota is not None:  # a retry re-plans each class's shortfall, with the same margin
            quota = {c: q - made[c] for c, q in p.quota.items()}
            quota = {c: (q if round_ == 0 else math.ceil(q * 1.5) + 2) if q > 0 else 0 for c, q in quota.items()}
            n_plan = sum(quota.values())
        plan = plan_pairs(
            plan_labels,
            n_plan,
            p.pairing,
            cfg.alpha,
            cfg.seed,
            round_,
            quota=quota,
            emb=emb if p.pairing in NEEDS_EMBEDDINGS else None,
            neighbours=cfg.neighbours,
            proba=labeller.proba if labeller is not None else None,
            renormalize=cfg.renormalize,
        )
        planned += n_plan
        stage = "decode" if round_ == 0 else f"decode (retry {round_})"
        advance = progress(stage, n_plan * cfg.num_candidates)
        for start in range(0, n_plan, GENERATE_BLOCK):  # memory: a block's targets, not the whole plan's
            if len(accepted) >= p.wanted:
                break
            block = plan.iloc[start : start + GENERATE_BLOCK]
            a, b, lam = block["a"].to_numpy(), block["b"].to_numpy(), block["lam"].to_numpy()
            targets = mix(emb, a, b, lam, cfg.renormalize, None if centres is None else centres(b))
            out_text, out_emb, fidelity = decode_candidates(
                stack, targets, block["seed"].to_numpy(), cfg, advance, decoder, p.anchors(cfg, a, b, lam)
            )
            la = [plan_labels[i] for i in a]
            lb = [plan_labels[i] for i in b]
            if labeller is not None:
                share = class_share(p.pairing, lam)
                lab = assign_labels(cfg.policy, labeller.proba(out_emb), labeller.classes, la, lb, share)
            for i in range(len(block)):
                if len(accepted) >= p.wanted:
                    break
                if p.quota is not None and made[la[i]] >= p.quota[la[i]]:
                    continue  # this class has its rows (a retry plans a margin)
                intrusion = bool(lab.intrusion[i]) if labeller is not None else None
                if filt.check(out_text[i], float(fidelity[i]), bool(intrusion)) is not None:
                    continue
                row = {
                    "text": out_text[i],
                    "label": lab.labels[i] if labeller is not None else None,
                    "parent_a": p.ids[a[i]],
                    "parent_b": p.ids[b[i]],
                    "parent_a_label": la[i],
                    "parent_b_label": lb[i],
                    "lambda": round(float(lam[i]), 4),
                    "fidelity": round(float(fidelity[i]), 4),
                    "label_confidence": round(float(lab.confidence[i]), 4) if labeller is not None else None,
                    "intrusion": intrusion,
                }
                if labeller is not None and lab.soft is not None:
                    row["soft_label"] = lab.soft[i]
                accepted.append(row)
                made[la[i]] += 1
    run = (decoder or stack.inverter).totals.since(decoded_before)
    return Generated(accepted, planned, filt, decode_summary(stack, run, cfg))


def new_rows_frame(rows: list[dict], p: Prepared, cfg: AugmentConfig) -> pd.DataFrame:
    """The new rows as `write.build_output` takes them (no rows: the columns alone)."""
    soft = cfg.policy == "soft" and p.labels is not None
    return pd.DataFrame(rows, columns=list(NEW_ROW_FIELDS) + (["soft_label"] if soft else []))


def run_stats(p: Prepared, g: Generated, cfg: AugmentConfig, stack: Stack, rows_read: int, started: float) -> dict:
    """The run's summary (`--stats-json`)."""
    accepted = g.rows
    seconds = time.time() - started
    intrusions = [r["intrusion"] for r in accepted if r["intrusion"] is not None]
    rejected_intrusions = g.filter.rejected.get("intrusion", 0)
    judged = len(intrusions) + rejected_intrusions
    return {
        "rows_read": rows_read,
        "rows_skipped_empty_text": p.skipped,
        "requested": p.wanted,
        "new_rows": len(accepted),
        "shortfall": p.wanted - len(accepted),
        "planned": g.planned,
        "rejected": dict(sorted(g.filter.rejected.items())),
        "intrusion_rate": round((sum(intrusions) + rejected_intrusions) / judged, 4) if judged else None,
        "mean_fidelity": round(float(np.mean([r["fidelity"] for r in accepted])), 4) if accepted else None,
        "seconds": round(seconds, 2),
        "rows_per_s": round(len(accepted) / seconds, 3) if seconds > 0 else None,
        "decode": g.decode,
        "pairing": p.pairing,
        "balance": cfg.balance_ratio,
        "max_per_row": _cap(p, cfg),
        "new_rows_per_class": _per_class(p, accepted),
        "label_policy": cfg.policy if p.labels is not None else None,
        "alpha": cfg.alpha,
        "seed": cfg.seed,
        "checkpoint": str(stack.checkpoint),
        "device": stack.device,
        "text_column": p.text_col,
        "label_column": p.label_col,
        "id_column": cfg.id_column,
    }


def _cap(p: Prepared, cfg: AugmentConfig) -> int | None:
    """--max-per-row where it shaped the plan (--balance's; an explicit quota is taken as given)."""
    return cfg.max_per_row if cfg.balance is not None and p.labels is not None else None


def _per_class(p: Prepared, rows: list[dict]) -> list[dict] | None:
    """Per class: rows read, new rows planned from it (parent a's class) and new rows labelled with it."""
    if p.labels is None:
        return None
    have, planned, labelled = (
        Counter(p.labels),
        Counter(r["parent_a_label"] for r in rows),
        Counter(r["label"] for r in rows),
    )
    return [
        {"label": c, "rows": have[c], "planned_from": planned[c], "labelled": labelled[c]}
        for c in dict.fromkeys(p.labels)
    ]


def preview(df: pd.DataFrame, config: AugmentConfig | None = None, samples: int = 5, **overrides) -> dict:
    """The dry run: the plan's shape and a few decoded samples, nothing written."""
    cfg = run_config(config, overrides)
    df = as_table(df)
    return preview_prepared(df, prepare(df, cfg), cfg, samples)


def preview_prepared(df: pd.DataFrame, p: Prepared, cfg: AugmentConfig, samples: int = 5) -> dict:
    """`preview` on inputs already prepared and checked (as `augment_prepared` takes them)."""
    texts = p.texts
    stack = stacks.load_stack(stacks.checkpoint_for(p, cfg)[0], cfg.device, cfg.precision)
    every = None
    if p.pairing in (*NEEDS_EMBEDDINGS, "transfer"):  # the partner, λ or b's class mean need every row
        every = stack.encoder.encode(texts, batch_size=cfg.decode_batch)
    labeller = Labeller(every, p.labels, cfg.seed) if p.pairing == "boundary" else None
    plan = plan_pairs(
        p.plan_labels,
        max(p.wanted, 1),
        p.pairing,
        cfg.alpha,
        cfg.seed,
        0,
        quota=p.quota if p.wanted else None,
        emb=every,
        neighbours=cfg.neighbours,
        proba=labeller.proba if labeller is not None else None,
        renormalize=cfg.renormalize,
    )
    head = plan.head(samples)
    parents = sorted(set(head["a"]) | set(head["b"]))  # encode only the sampled pairs' parents
    row_of = {i: k for k, i in enumerate(parents)}
    emb = (
        every[parents]
        if every is not None
        else stack.encoder.encode([texts[i] for i in parents], batch_size=cfg.decode_batch)
    )
    centre = class_centres(every, p.plan_labels)(head["b"].to_numpy()) if p.pairing == "transfer" else None
    targets = mix(
        emb,
        head["a"].map(row_of).to_numpy(),
        head["b"].map(row_of).to_numpy(),
        head["lam"].to_numpy(),
        cfg.renormalize,
        centre,
    )
    anchors = p.anchors(cfg, head["a"].to_numpy(), head["b"].to_numpy(), head["lam"].to_numpy())
    started = time.perf_counter()
    decoded, _, fid = decode_candidates(stack, targets, head["seed"].to_numpy(), cfg, lambda n: None, None, anchors)
    per_row = (time.perf_counter() - started) / max(len(head), 1)
    return {
        "rows_read": len(df),
        "rows_skipped_empty_text": p.skipped,
        "planned": p.wanted,
        # the samples' decode time per row x the plan: a full batch decodes faster, retries take longer
        "estimated_seconds": round(per_row * p.wanted * cfg.num_candidates),
        "pairing": p.pairing,
        "max_per_row": _cap(p, cfg),
        "balance": None if p.quota is None else [{"label": c, "new_rows": q} for c, q in p.quota.items()],
        "lambda_mean": round(float(plan["lam"].mean()), 4),
        "lambda_quartiles": [round(float(q), 4) for q in plan["lam"].quantile([0.25, 0.5, 0.75])],
        "samples": [
            {
                "a": texts[r.a],
                "b": texts[r.b],
                "lambda": round(float(r.lam), 4),
                "decoded": d,
                "fidelity": round(float(f), 4),
            }
            for r, d, f in zip(head.itertuples(), decoded, fid)
        ],
    }


def invert(
    df: pd.DataFrame,
    text_column: str | None = None,
    checkpoint: str | None = None,
    device: str = "auto",
    batch_size: int = DEFAULT_DECODE_BATCH,
    num_candidates: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
    precision: str = DEFAULT_PRECISION,
    search: str = "none",
    search_width: int = DEFAULT_SEARCH_WIDTH,
) -> pd.DataFrame:
    """Round trip: each row gets `reconstruction` and `fidelity` (cosine of re-encoding to the original)."""
    progress = progress or no_progress
    df = as_table(df)
    text_col = resolve_text_column(df, text_column)
    for col in ("reconstruction", "fidelity"):
        if col in df.columns:
            raise MixaugError(f"input already has a '{col}' column; rename or drop it")
    usable, _ = clean_texts(df, text_col)
    stack = stacks.load_stack(checkpoint, device, precision)
    texts = usable[text_col].tolist()
    emb = stack.encoder.encode(texts, batch_size=batch_size, on_batch=progress("encode", len(texts)))
    cfg = AugmentConfig(
        num_candidates=num_candidates, decode_batch=batch_size, search=search, search_width=search_width
    )
    cfg.validate()
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, len(texts))
    recon, _, fid = decode_candidates(stack, emb, seeds, cfg, progress("decode", len(texts) * num_candidates))
    out = df.astype(object).copy()
    out["reconstruction"] = None
    out["fidelity"] = None
    out.loc[usable.index, "reconstruction"] = recon
    out.loc[usable.index, "fidelity"] = [round(float(f), 4) for f in fid]
    return out


def mix_texts(
    text_a: str,
    text_b: str,
    lams: Sequence[float],
    checkpoint: str | None = None,
    device: str = "auto",
    renormalize: bool = True,
    num_candidates: int = 1,
    seed: int = 0,
    precision: str = DEFAULT_PRECISION,
    anchor: float = 0.0,
) -> list[dict]:
    """Decode λ·a + (1−λ)·b for each λ; returns [{lambda, text, cos_a, cos_b}]. anchor: --anchor's β (the
    two texts' words weighted by idf over the pair). The texts and λs are checked before a model loads."""
    from .config import check_number

    for name, text in (("TEXT_A", text_a), ("TEXT_B", text_b)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise MixaugError(f"{name} is not valid UTF-8 text (check the terminal's encoding)") from None
        if not text.strip():
            raise MixaugError(f"{name} is empty")
    for value in lams:
        check_number("--lam", value, 0, 1)
    cfg = AugmentConfig(num_candidates=num_candidates, precision=precision, device=device, anchor=anchor)
    cfg.validate()
    stacks.checked_checkpoint(checkpoint)
    stack = stacks.load_stack(checkpoint, device, precision)
    emb = stack.encoder.encode([text_a, text_b])
    n = len(lams)
    a, b, lam = np.zeros(n, dtype=int), np.ones(n, dtype=int), np.asarray(lams)
    targets = mix(emb, a, b, lam, renormalize)
    anchors = Prepared("text", None, [text_a, text_b], None, [0, 1], 0, "random", n).anchors(cfg, a, b, lam)
    texts, out_emb, fid = decode_candidates(stack, targets, np.arange(n) + seed, cfg, lambda k: None, None, anchors)
    cos_a = cosine_rows(out_emb, np.repeat(emb[:1], n, 0))
    cos_b = cosine_rows(out_emb, np.repeat(emb[1:], n, 0))
    return [
        {
            "lambda": float(l),
            "text": t,
            "fidelity": round(float(f), 4),
            "cos_a": round(float(x), 4),
            "cos_b": round(float(y), 4),
        }
        for l, t, f, x, y in zip(lams, texts, fid, cos_a, cos_b)
    ]
