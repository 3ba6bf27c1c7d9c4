"""A run's inputs, prepared and checked before any model loads: the config (`run_config`: a config with keyword
overrides, validated), the table (`as_table`), its text, label and id columns and the new rows it asks for
(`prepare` -> `Prepared`), and the texts of --adapt-on's file (`pool_texts`). Every problem is one line."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from .config import MAX_NEW_ROWS, AugmentConfig, new_names
from .data.columns import column_list, resolve_label_column, resolve_text_column
from .data.formats import is_missing
from .data.provenance import check_no_collision
from .errors import MixaugError
from .inversion.anchor import WordWeights, row_anchors
from .mix import check_pairable, class_quota


def run_config(config: AugmentConfig | None, overrides: dict) -> AugmentConfig:
    """The run's config: `config` with keyword overrides, validated; an unknown keyword is a MixaugError. An
    old name (batch_size: decode_batch) still works, with a DeprecationWarning at the caller's caller (the
    user's `augment(...)`)."""
    overrides = new_names(AugmentConfig, overrides, stacklevel=3)
    unknown = sorted(set(overrides) - {f.name for f in fields(AugmentConfig)})
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


def is_blank(value) -> bool:
    """No label or id: missing, or the empty string a CSV cell holds."""
    return is_missing(value) or (isinstance(value, str) and value == "")


def _kind(value) -> str:
    return {bool: "boolean", int: "number", float: "number", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_keys(values: list, column: str, what: str, unique: bool) -> None:
    """Labels and ids must be scalar, present, and distinct as the file wrote them: 1 and True (or 1 and
    1.0) are one key to Python, so a column that holds both would silently merge them."""
    seen: dict = {}
    for i, v in enumerate(values):
        if is_blank(v):
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
        check_keys(df[label_col].tolist(), label_col, "label", unique=False)
        classes = len(set(labels))
        if classes > MAX_CLASSES:
            raise MixaugError(
                f"label column '{label_col}' holds {classes:,} classes; mixaug plans and labels at most "
                f"{MAX_CLASSES:,} (merge rare labels, or augment a subset of the classes at a time)"
            )
        missing = [i for i, l in zip(usable.index, labels) if is_blank(l)]
        if missing:
            raise MixaugError(
                f"row {missing[0] + 1} has a text but no label in '{label_col}' ({len(missing)} such "
                "rows); fill or drop unlabelled rows"
            )
    if cfg.id_column:
        check_keys(df[cfg.id_column].tolist(), cfg.id_column, "id", unique=True)
        absent = [i for i, v in zip(usable.index, usable[cfg.id_column].tolist()) if is_blank(v)]
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
        quota = class_quota(labels, cfg.balance_ratio, cfg.num_augmented, cfg.max_per_row)
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


def file_texts(
    path,
    column: str | None = None,
    prefer: str | None = None,
    input_format: str | None = None,
    limit: int | None = None,
) -> list[str]:
    """The non-empty texts of a dataset file (of its first `limit` rows), in its order: from `column`, else
    from `prefer` where the file has that column, else from the usual candidates (text, sentence, content)."""
    from .data.columns import resolve_text_column
    from .data.read import read_dataset

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
