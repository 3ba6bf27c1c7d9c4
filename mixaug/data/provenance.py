"""Assembling the output table: originals first (columns untouched), then new rows with provenance.

Provenance columns are prefixed `mixaug_` so they cannot collide with a user's columns; an input that
already has such a column is refused rather than silently overwritten.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..errors import MixaugError

PREFIX = "mixaug_"
PROVENANCE = (
    "mixaug_source",
    "mixaug_parent_a",
    "mixaug_parent_b",
    "mixaug_parent_a_label",
    "mixaug_parent_b_label",
    "mixaug_lambda",
    "mixaug_fidelity",
    "mixaug_label_confidence",
    "mixaug_intrusion",
)
# a row's weight in a classifier's loss, for every row (originals 1): `sample_weight=df["mixaug_weight"]`
WEIGHT = "mixaug_weight"


def row_weight(fidelity, confidence) -> float:
    """A new row's weight: its fidelity (clipped to [0, 1]) x the labeller's confidence in the label written
    (1 where no labeller gave it: parent and soft labels). The surer and the closer to its mixture, the
    heavier; an original weighs 1. Rounded to 4 places like the fidelity and confidence. Measured as `mixaug eval`'s +weighted (README, *How the rows are used*)."""
    f = min(max(float(fidelity), 0.0), 1.0)
    c = 1.0 if confidence is None or confidence != confidence else float(confidence)  # None or NaN
    return round(f * c, 4)  # to 4 places, as every other provenance number


def check_no_collision(df: pd.DataFrame) -> None:
    clash = [c for c in map(str, df.columns) if c.startswith(PREFIX)]
    if clash:
        raise MixaugError(f"input already has provenance column(s) {', '.join(clash)}; rename or drop them")


def _py(value):
    """numpy scalars -> Python scalars, so every writer (JSON, CSV, parquet) sees plain values."""
    return value.item() if isinstance(value, np.generic) else value


def build_output(
    originals: pd.DataFrame, new_rows: pd.DataFrame, text_column: str, label_column: str | None, only_new: bool
) -> pd.DataFrame:
    """originals (unless only_new, values untouched) + new rows. `new_rows` holds text/label and the
    provenance fields; a new row's other columns are None."""
    n = len(new_rows)
    new = {c: [None] * n for c in originals.columns}
    new[text_column] = list(new_rows["text"])
    if label_column is not None:
        new[label_column] = [_py(v) for v in new_rows["label"]]
    new["mixaug_source"] = ["mixup"] * n
    for field in PROVENANCE[1:]:
        new[field] = [_py(v) for v in new_rows[field[len(PREFIX) :]]]
    new[WEIGHT] = [row_weight(f, c) for f, c in zip(new_rows["fidelity"], new_rows["label_confidence"])]
    if "soft_label" in new_rows:
        new["mixaug_soft_label"] = [json.dumps(d, sort_keys=True) for d in new_rows["soft_label"]]
    columns = {c: list(v) for c, v in new.items()}
    if not only_new:
        m = len(originals)
        columns = {
            c: (
                originals[c].tolist()
                if c in originals.columns
                else ["original"] * m
                if c == "mixaug_source"
                else [1.0] * m
                if c == WEIGHT
                else [None] * m
            )
            + v
            for c, v in new.items()
        }
    out = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in columns.items()})
    out.attrs = dict(originals.attrs)  # e.g. the Arrow schema of a Parquet input
    return out
