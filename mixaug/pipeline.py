"""`augment`, `invert`, `mix`: the Python API the CLI is a thin layer over.

Stages run in order (io -> encode -> mix -> invert -> re-encode -> label -> filter -> write); this module
only wires them. Models are loaded once per (checkpoint, device) and reused across calls.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .anchor import WordWeights, row_anchors
from .candidates import Stack, decode_candidates, decode_summary
from .checkpoint import DEFAULT_CHECKPOINT
from .config import (
    ADAPT_ON_SEED,
    DEFAULT_BATCH_SIZE,
    DEFAULT_PRECISION,
    DEFAULT_SEARCH_WIDTH,
    MAX_NEW_ROWS,
    AugmentConfig,
    balance_ratio,
)
from .data.provenance import build_output, check_no_collision
from .decode_cache import DecodeCache
from .decode_cache import decode_cache_path as _decode_cache_path
from .encode import cosine_rows
from .errors import MixaugError
from .filter import Filter
from .io import column_list, is_missing, resolve_label_column, resolve_text_column
from .label import Labeller, assign_labels
from .mix import NEEDS_EMBEDDINGS, check_pairable, class_centres, class_quota, class_share, mix, plan_pairs

_STACKS: dict[tuple[str, str, str], Stack] = {}


def checkpoint_path(checkpoint: str | Path | None) -> Path:
    """The checkpoint folder: the given one (or its checkpoint/ subfolder for a training run), else
    $MIXAUG_CHECKPOINT, else the one shipped in the package."""
    path = Path(checkpoint or os.environ.get("MIXAUG_CHECKPOINT") or DEFAULT_CHECKPOINT)
    if not (path / "manifest.json").exists() and (path / "checkpoint" / "manifest.json").exists():
        path = path / "checkpoint"
    return path


def validate_checkpoint(checkpoint: str | Path | None = None) -> Path:
    """Check a checkpoint (manifest, weight headers) without loading a model: a bad one fails in a second,
    before the input is encoded. Returns its folder."""
    from .checkpoint import validate_checkpoint as check

    path = checkpoint_path(checkpoint)
    check(path)
    return path


def load_stack(checkpoint: str | Path | None = None, device: str = "auto", precision: str = "fp32") -> Stack:
    """Load (once per process) the encoder and inverter named by a checkpoint's manifest; `precision` is
    the LM's while decoding (fp32, or int8 on CPU)."""
    from .encode import load_encoder
    from .invert import load_inverter, resolve_precision
    from .models import resolve_device

    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    path = checkpoint_path(checkpoint)
    key = (str(path.resolve()), dev, precision)
    if key not in _STACKS:
        from . import checkpoint as ckpt

        manifest = ckpt.validate_checkpoint(path)  # before the encoder: a hostile checkpoint costs no model load
        encoder = load_encoder(manifest.encoder, dev, manifest.normalize, base=path)
        if encoder.dim != manifest.encoder_dim:
            raise MixaugError(
                f"encoder {manifest.encoder} gives {encoder.dim}-d embeddings; checkpoint {path} expects "
                f"{manifest.encoder_dim}"
            )
        inverter = load_inverter(path, dev, precision=precision, encoder=lambda: encoder)
        # int8: the decode cache's file is named by the calibration in use, so it is read (or measured) now
        cache_file = _decode_cache_path(path, dev, precision, inverter.calibration_id())
        _STACKS[key] = Stack(encoder, inverter, path, dev, DecodeCache(cache_file))
    return _STACKS[key]


Progress = Callable[[str, int], Callable[[int], None]]  # (stage, total) -> advance(n)


def _no_progress(stage: str, total: int) -> Callable[[int], None]:
    return lambda n: None


def clean_texts(df: pd.DataFrame, text_column: str) -> tuple[pd.DataFrame, int]:
    """Drop rows whose text is empty or missing; error if none remain or a text is not text (a number, a
    list: the wrong column, most likely). Returns (rows kept, count skipped)."""
    values = df[text_column].tolist()
    for i, t in enumerate(values):
        if not (isinstance(t, str) or is_missing(t)):
            raise MixaugError(
                f"column '{text_column}' holds {_kind(t)} values, not text (row {i + 1}: {_show(t)}); "
                "choose the text column with --text-column"
            )
    ok = pd.Series([isinstance(t, str) and bool(t.strip()) for t in values], index=df.index)
    if not ok.any():
        raise MixaugError(f"no usable text: all {len(df)} rows have an empty or missing '{text_column}'")
    return df[ok], int((~ok).sum())


def _blank(value) -> bool:
    """No label or id: missing, or the empty string a CSV cell holds."""
    return is_missing(value) or (isinstance(value, str) and value == "")


def _kind(value) -> str:
    return {bool: "boolean", int: "number", float: "number", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_keys(values: list, column: str, what: str, unique: bool) -> None:
    """Labels and ids must be scalar, present, and distinct as the file wrote them: 1 and True (or 1 and
    1.0) are one key to Python, so a column that holds both would silently merge them."""
    seen: dict = {}
    for i, v in enumerate(values):
        if _blank(v):
            continue
        if not isinstance(v, (str, int, float, bool)):
            raise MixaugError(
                f"{what} column '{column}' holds {_kind(v)} values (row {i + 1}: {_show(v)}); "
                f"{what}s must be text, numbers or booleans"
            )
        if v in seen:
            j, first = seen[v]
            if type(first) is not type(v):
                raise MixaugError(
                    f"{what} column '{column}' holds {first!r} (row {j + 1}) and {v!r} (row {i + 1}), "
                    f"which are different values in the file but the same {what} to Python; make "
                    f"the column one type"
                )
            if unique:
                raise MixaugError(
                    f"{what} column '{column}' has the duplicate value {v!r} (rows {j + 1} and {i + 1}); "
                    f"ids must be unique so that provenance names one parent"
                )
        else:
            seen[v] = (i, v)


@dataclass
class Prepared:
    """The validated inputs of a run: which columns, which rows, which labels, how many new rows."""

    text_col: str
    label_col: str | None
    texts: list
    labels: list | None
    ids: list
    skipped: int
    pairing: str
    wanted: int
    quota: dict | None = None  # --balance: new rows per class (label -> count), summing to wanted
    _word_weights: WordWeights | None = field(default=None, repr=False)

    @property
    def plan_labels(self) -> list:
        return self.labels if self.labels is not None else [None] * len(self.texts)

    def anchors(self, cfg: AugmentConfig, a: np.ndarray, b: np.ndarray, lam: np.ndarray) -> list | None:
        """--anchor: each planned row's anchoring words and bonuses (anchor.row_anchors), weighted over
        this dataset's rows; None when anchoring is off."""
        if cfg.anchor <= 0:
            return None
        if self._word_weights is None:
            self._word_weights = WordWeights(self.texts, self.labels, cfg.anchor_weights)
        t, w = self.texts, self._word_weights
        return [row_anchors(t[i], t[j], float(l), cfg.anchor, w) for i, j, l in zip(a, b, lam)]


def _config(config: AugmentConfig | None, overrides: dict) -> AugmentConfig:
    """The run's config: `config` with keyword overrides, validated; an unknown keyword is a MixaugError."""
    unknown = sorted(set(overrides) - set(AugmentConfig.__dataclass_fields__))
    if unknown:
        raise MixaugError(f"unknown option(s) {', '.join(unknown)}; see mixaug.AugmentConfig")
    cfg = replace(config or AugmentConfig(), **overrides)
    cfg.validate()
    return cfg


def as_table(df) -> pd.DataFrame:
    """The input as the pipeline needs it: a DataFrame with unique text column names, rows named by position.
    Parents are named by row number (without --id-column), and the output renumbers its rows, so a
    user's index (shuffled, strings, duplicates) must not be mistaken for row numbers."""
    if not isinstance(df, pd.DataFrame):
        raise MixaugError(f"expected a pandas DataFrame (e.g. from mixaug.read_dataset), got a {type(df).__name__}")
    names = list(df.columns)
    if not all(isinstance(c, str) for c in names):
        odd = [repr(c) for c in names if not isinstance(c, str)][:3]
        raise MixaugError(f"column names must be text, found {', '.join(odd)}; rename the columns first")
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise MixaugError(f"duplicate column name(s) {', '.join(dupes)}; rename them first")
    if isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1:
        return df
    out = df.reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


MAX_CLASSES = 2_000  # the labeller's probabilities are rows x classes: a block of 16,384 rows at 2,000 is 262 MB


def prepare(df: pd.DataFrame, cfg: AugmentConfig) -> Prepared:
    """Check a dataset against a config before any model runs; every problem is a one-line MixaugError."""
    check_no_collision(df)
    text_col = resolve_text_column(df, cfg.text_column)
    label_col = resolve_label_column(df, cfg.label_column)
    if label_col == text_col:
        raise MixaugError(f"the text and label columns are both '{text_col}'; name different columns")
    if cfg.id_column and cfg.id_column not in df.columns:
        raise MixaugError(f"id column '{cfg.id_column}' not found; columns found: {column_list(df.columns)}")
    usable, skipped = clean_texts(df, text_col)
    texts = usable[text_col].tolist()
    labels = usable[label_col].tolist() if label_col else None
    if label_col:
        _check_keys(df[label_col].tolist(), label_col, "label", unique=False)
        classes = len(set(labels))
        if classes > MAX_CLASSES:
            raise MixaugError(
                f"label column '{label_col}' holds {classes:,} classes; mixaug plans and labels at most "
                f"{MAX_CLASSES:,} (merge rare labels, or augment a subset of the classes at a time)"
            )
        missing = [i for i, l in zip(usable.index, labels) if _blank(l)]
        if missing:
            raise MixaugError(
                f"row {missing[0] + 1} has a text but no label in '{label_col}' ({len(missing)} such "
                "rows); fill or drop unlabelled rows"
            )
    if cfg.id_column:
        _check_keys(df[cfg.id_column].tolist(), cfg.id_column, "id", unique=True)
        absent = [i for i, v in zip(usable.index, usable[cfg.id_column].tolist()) if _blank(v)]
        if absent:
            raise MixaugError(
                f"row {absent[0] + 1} has a text but no id in '{cfg.id_column}' ({len(absent)} such rows)"
            )
    ids = usable[cfg.id_column].tolist() if cfg.id_column else [int(i) for i in usable.index]
    pairing = cfg.pairing_for(labels)
    check_pairable(labels, pairing)
    if len(texts) < 2:
        raise MixaugError("need at least 2 rows with text to mix")
    wanted = len(df) if cfg.num_augmented is None else cfg.num_augmented
    quota = plan_quota(labels, cfg)
    if quota is not None:
        wanted = sum(quota.values())
    return Prepared(text_col, label_col, texts, labels, ids, skipped, pairing, wanted, quota)


def plan_quota(labels: list | None, cfg: AugmentConfig) -> dict | None:
    """New rows per class (every class, in first-seen order) for a per-class plan: --balance's (mix.class_quota)
    or the config's explicit quota; None otherwise. Its total is bounded like -n's, before any model loads."""
    if not cfg.per_class:
        return None
    what = "--balance" if cfg.balance is not None else "quota"
    if labels is None:
        raise MixaugError(f"{what} needs a label column (name it with --label-column)")
    if cfg.quota is None:
        quota = class_quota(labels, balance_ratio(cfg.balance), cfg.num_augmented, cfg.max_per_row)
    else:
        classes = dict.fromkeys(labels)
        absent = [c for c in cfg.quota if c not in classes]
        if absent:
            raise MixaugError(f"quota names class {_show(absent[0])}, which no row has")
        quota = {c: cfg.quota.get(c, 0) for c in classes}
    total = sum(quota.values())
    if total > MAX_NEW_ROWS:
        raise MixaugError(
            f"{what} plans {total:,} new rows, more than the {MAX_NEW_ROWS:,} a run may make; ask for fewer "
            "(-n N, or a smaller --balance ratio)"
        )
    return quota


def augment(
    df: pd.DataFrame, config: AugmentConfig | None = None, progress: Progress | None = None, **overrides
) -> pd.DataFrame:
    """Augment a labelled (or unlabelled) DataFrame by inverted mixup.

    Returns the output table (originals first unless only_new, then new rows with `mixaug_*`
    provenance); the run's statistics are in `result.attrs["mixaug_stats"]`.
    """
    cfg = _config(config, overrides)
    progress = progress or _no_progress
    started = time.time()
    df = as_table(df)
    p = prepare(df, cfg)

    stack, decoder, task = load_for(p, cfg)
    try:
        return _augment_loaded(df, p, cfg, stack, decoder, task, progress, started)
    finally:
        if decoder is not None:
            decoder.close()


def load_for(p: Prepared, cfg: AugmentConfig):
    """The run's models: (stack, decoder, task). The checkpoint is first refined on the rows' texts for
    --adapt, on the --adapt-on file's texts and then the rows' for --adapt-on (seed ADAPT_ON_SEED), or for
    --task-model finetune on the embeddings of a task model fitted to the labelled rows (all cached).
    decoder is None for the local engine, else a RayDecoder whose actors are loaded; task is None, or the
    task model's head, which then labels the new rows."""
    checkpoint, task = checkpoint_for(p, cfg)
    stack = load_stack(checkpoint, cfg.device, cfg.precision)
    return stack, _remote_decoder(stack, cfg), task


def checkpoint_for(p: Prepared, cfg: AugmentConfig):
    """(the checkpoint the run decodes with, the task model's head or None): see `load_for`. The dry run
    calls it too, so it checks --adapt-on's file and shows samples of the checkpoint the run would use
    (adapting costs a real run nothing more: the adapted checkpoint is cached)."""
    checkpoint, task, encoder = cfg.checkpoint, None, None
    texts, seed = list(p.texts), cfg.seed
    if cfg.adapt_on is not None:  # read first: a bad file fails before any model loads
        texts, seed = pool_texts(cfg) + texts, ADAPT_ON_SEED
    if cfg.task_model == "finetune":
        task, encoder = _task_model(p, cfg)
    if cfg.adapt or cfg.adapt_on is not None or task is not None:
        from .train import adapt

        checkpoint = adapt(
            texts,
            checkpoint_path(cfg.checkpoint),
            cfg.adapt_steps,
            cfg.adapt_minutes,
            seed,
            cfg.device,
            progress=False,
            encoder=encoder,
        )
    return checkpoint, task


def file_texts(
    path,
    column: str | None = None,
    prefer: str | None = None,
    input_format: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """The non-empty texts of a dataset file (of its first `limit` rows), in its order: from `column`, else
    from `prefer` where the file has that column, else from the usual candidates (text, sentence, content)."""
    from .io import read_dataset, resolve_text_column

    df = read_dataset(path, input_format, limit)
    if column is None and prefer in map(str, df.columns):
        column = prefer
    col = resolve_text_column(df, column)
    return clean_texts(df, col)[0][col].tolist()


MAX_POOL_TEXTS = 100_000  # --adapt-on reads at most this many rows' texts: every one is encoded before adapting


def pool_texts(cfg: AugmentConfig) -> list[str]:
    """--adapt-on: the texts of the unlabelled file, in its order (labels and other columns unused; rows
    with empty text skipped), the first MAX_POOL_TEXTS of them. Its text column: --adapt-on-column, else
    --text-column where the file has it, else the usual candidates (text, sentence, content)."""
    import warnings

    from .errors import MixaugWarning

    try:
        # one row more than is used, to know whether there were more: the rest is read (its errors found) but not held
        texts = file_texts(str(cfg.adapt_on), cfg.adapt_on_column, prefer=cfg.text_column, limit=MAX_POOL_TEXTS + 1)
    except MixaugError as e:  # the advice names --adapt-on's own option
        raise MixaugError(f"--adapt-on: {str(e).replace('--text-column', '--adapt-on-column')}") from None
    if len(texts) > MAX_POOL_TEXTS:
        warnings.warn(
            MixaugWarning(f"--adapt-on: using the first {MAX_POOL_TEXTS:,} texts of a longer file"), stacklevel=2
        )
    return texts[:MAX_POOL_TEXTS]


def _task_model(p: Prepared, cfg: AugmentConfig):
    """(head, encoder folder) of the task model fitted to the labelled rows (cached)."""
    from . import checkpoint as ckpt
    from .encode import load_encoder
    from .models import resolve_device
    from .task import fit_cached, load_labeller

    if p.labels is None:
        raise MixaugError("--task-model finetune needs labelled rows (name the label column with --label-column)")
    base = checkpoint_path(cfg.checkpoint)
    manifest = ckpt.validate_checkpoint(base)
    encoder = load_encoder(manifest.encoder, resolve_device(cfg.device), manifest.normalize, base=base)
    folder = fit_cached(encoder, p.texts, p.labels, cfg.seed, cfg.task_steps)
    return load_labeller(folder, list(dict.fromkeys(p.labels))), str(folder / "encoder")


def forget_stack(checkpoint: str | Path) -> None:
    """Drop the loaded stacks of a checkpoint (e.g. one adapted to a single subset) so their memory is freed."""
    path = str(checkpoint_path(checkpoint).resolve())
    for key in [k for k in _STACKS if k[0] == path]:
        del _STACKS[key]


def stats_json_bytes(stats: dict) -> bytes:
    """The --stats-json file's bytes."""
    return (json.dumps(stats, indent=2, ensure_ascii=False, default=str) + "\n").encode()


def _remote_decoder(stack: Stack, cfg: AugmentConfig):
    """None for the local engine; a RayDecoder (its actors loaded) for --engine ray."""
    if cfg.engine == "local":
        return None
    from .engines.ray import RayDecoder

    return RayDecoder(stack.checkpoint, stack.device, stack.inverter.precision, cfg.num_workers)


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
        "balance": balance_ratio(cfg.balance),
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


def _augment_loaded(df, p: Prepared, cfg: AugmentConfig, stack: Stack, decoder, task, progress, started: float):
    emb = stack.encoder.encode(p.texts, batch_size=cfg.batch_size, on_batch=progress("encode", len(p.texts)))
    g = generate(p, emb, cfg, stack, decoder, progress, task)
    result = build_output(df, new_rows_frame(g.rows, p, cfg), p.text_col, p.label_col, cfg.only_new)
    result.attrs["mixaug_stats"] = run_stats(p, g, cfg, stack, len(df), started)
    return result


def preview(df: pd.DataFrame, config: AugmentConfig | None = None, samples: int = 5, **overrides) -> dict:
    """The dry run: the plan's shape and a few decoded samples, nothing written."""
    cfg = _config(config, overrides)
    df = as_table(df)
    p = prepare(df, cfg)
    texts = p.texts
    stack = load_stack(checkpoint_for(p, cfg)[0], cfg.device, cfg.precision)
    every = None
    if p.pairing in (*NEEDS_EMBEDDINGS, "transfer"):  # the partner, λ or b's class mean need every row
        every = stack.encoder.encode(texts, batch_size=cfg.batch_size)
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
        else stack.encoder.encode([texts[i] for i in parents], batch_size=cfg.batch_size)
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
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_candidates: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
    precision: str = DEFAULT_PRECISION,
    search: str = "none",
    search_width: int = DEFAULT_SEARCH_WIDTH,
) -> pd.DataFrame:
    """Round trip: each row gets `reconstruction` and `fidelity` (cosine of re-encoding to the original)."""
    progress = progress or _no_progress
    df = as_table(df)
    text_col = resolve_text_column(df, text_column)
    for col in ("reconstruction", "fidelity"):
        if col in df.columns:
            raise MixaugError(f"input already has a '{col}' column; rename or drop it")
    usable, _ = clean_texts(df, text_col)
    stack = load_stack(checkpoint, device, precision)
    texts = usable[text_col].tolist()
    emb = stack.encoder.encode(texts, batch_size=batch_size, on_batch=progress("encode", len(texts)))
    cfg = AugmentConfig(num_candidates=num_candidates, batch_size=batch_size, search=search, search_width=search_width)
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
    validate_checkpoint(checkpoint)
    stack = load_stack(checkpoint, device, precision)
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
