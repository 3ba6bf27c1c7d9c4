"""The formats a dataset file can have, and what a table read from one carries: the names every part of
`mixaug.data` shares (the missing-key marker, the attrs keys, the one error for a value a format cannot hold)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MixaugError

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
TEXT_COLUMN_CANDIDATES = ("text", "sentence", "content")
MISSING = pd.NA  # a JSON key absent from a row (None is an explicit null)
ARROW_SCHEMA = "mixaug_arrow_schema"  # df.attrs key: the Arrow schema of a Parquet input
# df.attrs key set by the JSON readers: there, MISSING (pd.NA) marks a key a row lacked. In any other frame
# (one pandas built) pd.NA, NaN and NaT are pandas' missing values and are written as null.
ABSENT_KEYS = "mixaug_absent_keys"
_JSON_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}


class CannotHold(MixaugError):
    """The output format cannot hold a value of the table (raised before anything is written)."""


def detect_format(path: str | Path, explicit: str | None = None) -> tuple[str, bool]:
    """Return (format, gzipped) for a path; '-' (stdin/stdout) takes the explicit format or jsonl."""
    if explicit:
        explicit = explicit.lower().lstrip(".")
        if explicit not in FORMATS:
            raise MixaugError(f"unknown format '{explicit}': use one of {', '.join(FORMATS)}")
    if str(path) == "-":
        return explicit or "jsonl", False
    name = Path(path).name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    fmt = explicit or ext
    if fmt not in FORMATS:
        what = f"unknown file extension '.{ext}'" if ext else "no file extension"
        raise MixaugError(
            f"{what} for {path}: use .jsonl, .json, .csv, .tsv, .parquet "
            "(or .gz of the text formats), or pass --input-format/--output-format"
        )
    if gz and fmt == "parquet":
        raise MixaugError(f"{path}: parquet is compressed already; .parquet.gz is not supported")
    return fmt, gz


def is_missing(value) -> bool:
    """None, MISSING (pd.NA), NaT or a float NaN: no value. Never raises, whatever the value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)
