"""Which columns hold the text and the label, and column names as a one-line message shows them."""

from __future__ import annotations

import json

import pandas as pd

from ..errors import MixaugError
from .formats import TEXT_COLUMN_CANDIDATES


def quoted(name) -> str:
    """A column name for a one-line message: 'name', or JSON-escaped where it holds a line break or the like."""
    name = str(name)
    return f"'{name}'" if name.isprintable() else json.dumps(name, ensure_ascii=False)


def column_list(columns) -> str:
    """Column names for a one-line message: as they are, JSON-escaped where one holds a line break."""
    names = [str(c) if str(c).isprintable() else json.dumps(str(c), ensure_ascii=False) for c in columns]
    return ", ".join(names) or "(none)"


# -- columns ------------------------------------------------------------------------------------------


def resolve_text_column(df: pd.DataFrame, requested: str | None) -> str:
    """Pick the text column: the requested one, or the first of text/sentence/content present."""
    if len(df) == 0:
        raise MixaugError("the dataset is empty (no rows)")
    cols = list(map(str, df.columns))
    if requested:
        if requested not in cols:
            raise MixaugError(f"text column '{requested}' not found; columns found: {column_list(cols)}")
        return requested
    for cand in TEXT_COLUMN_CANDIDATES:
        if cand in cols:
            return cand
    raise MixaugError(
        f"no text column (looked for {', '.join(TEXT_COLUMN_CANDIDATES)}); columns found: "
        f"{column_list(cols)}; pass --text-column"
    )


def resolve_label_column(df: pd.DataFrame, requested: str | None) -> str | None:
    """The requested label column (must exist), else 'label' if present, else None (unlabelled)."""
    cols = list(map(str, df.columns))
    if requested:
        if requested not in cols:
            raise MixaugError(f"label column '{requested}' not found; columns found: {column_list(cols)}")
        return requested
    return "label" if "label" in cols else None
