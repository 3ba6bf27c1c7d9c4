"""A table's values written in each format: the same values out, or CannotHold (one line) before any work."""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import io
import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import MixaugError
from .columns import quoted
from .formats import _JSON_LINE_BREAKS, ABSENT_KEYS, ARROW_SCHEMA, MISSING, CannotHold, detect_format, is_missing

# -- values -> each format ----------------------------------------------------------------------------


def _where(column: str, row: int) -> str:
    return f"column {quoted(column)}, row {row + 1}"


def _json_value(value, column: str, row: int, fmt: str):
    """A plain JSON value for a cell, or CannotHold. Timestamps become ISO 8601 text, decimals text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CannotHold(
                f"{_where(column, row)} holds {value!r}, which {fmt.upper()} cannot hold; "
                "write .parquet or .csv, or replace it first"
            )
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (dt.timedelta, pd.Timedelta)):
        return pd.Timedelta(value).isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_value(v, column, row, fmt) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise CannotHold(
                f"{_where(column, row)} holds a mapping with non-text keys, which {fmt.upper()} "
                "cannot hold; write .parquet"
            )
        return {k: _json_value(v, column, row, fmt) for k, v in value.items()}
    kind = "binary data" if isinstance(value, (bytes, bytearray, memoryview)) else f"a {type(value).__name__}"
    raise CannotHold(f"{_where(column, row)} holds {kind}, which {fmt.upper()} cannot hold; write .parquet")


def _dump_json(obj, **kw) -> str:
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, **kw)
    for char, escaped in _JSON_LINE_BREAKS.items():  # exact either way; escaped, no tool splits a line there
        text = text.replace(char, escaped)
    return text


def _json_records(df: pd.DataFrame, fmt: str, first_row: int = 0) -> list[dict]:
    names = _column_names(df, fmt)
    absent = bool(df.attrs.get(ABSENT_KEYS))
    exact = absent or ARROW_SCHEMA in df.attrs  # read by mixaug: NaN is a value; else pandas' missing value
    cols = [[None if not exact and is_missing(v) else v for v in df[c].tolist()] for c in df.columns]
    out = []
    for i in range(len(df)):
        out.append(
            {
                n: _json_value(col[i], n, first_row + i, fmt)
                for n, col in zip(names, cols)
                if not (absent and col[i] is MISSING)
            }
        )
    return out


def _text_cell(value, column: str, row: int, fmt: str) -> str:
    """A CSV/TSV cell: missing -> empty, numbers as Python writes them, nested values as JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        return _dump_json(_json_value(value, column, row, fmt), separators=(",", ":"))
    return _json_value(value, column, row, fmt)


def _csv_field(text: str) -> str:
    if text == "" or any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _delimited(df: pd.DataFrame, fmt: str, header: bool = True, first_row: int = 0) -> bytes:
    """The header line (unless not `header`: a later chunk of one file) and one line per row."""
    names = _column_names(df, fmt)
    cols = [df[c].tolist() for c in df.columns]
    body = [[_text_cell(col[i], n, first_row + i, fmt) for n, col in zip(names, cols)] for i in range(len(df))]
    rows = [names] + body if header else body
    skip = 1 if header else 0  # rows[i] is data row first_row + i - skip
    if fmt == "tsv":
        for i, row in enumerate(rows):
            for k, (name, cell) in enumerate(zip(names, row)):
                if "\t" in cell or "\n" in cell or (k == len(row) - 1 and cell.endswith("\r")):
                    where = f"column name {quoted(name)}" if i < skip else _where(name, first_row + i - skip)
                    raise CannotHold(f"{where} holds a tab or line break, which TSV cannot hold; write .csv or .jsonl")
        lines = ["\t".join(row) for row in rows]
    else:
        lines = [",".join(_csv_field(c) for c in row) if len(row) > 1 or row[0] else '""' for row in rows]
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _column_names(df: pd.DataFrame, fmt: str) -> list[str]:
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        raise CannotHold(f"duplicate column names {names}")
    if fmt in ("csv", "tsv") and "" in names:
        raise CannotHold(f"a column has an empty name, which a {fmt.upper()} header cannot hold")
    return names


def _same(a, b) -> bool:
    """Equal values of the same kind: 1, 1.0 and True all differ (a file that said 1 must not come back
    saying 1.0); NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    for kind in (dt.datetime, dt.timedelta):  # pandas' Timestamp/Timedelta come back as Python's: same instant
        if isinstance(a, kind) and isinstance(b, kind):
            return bool(a == b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _arrow_table(df: pd.DataFrame):
    """A pyarrow Table with each column in its original Arrow type where known, else an inferred one;
    a column Arrow would change (mixed kinds, dicts with different keys, …) is CannotHold."""
    import pyarrow as pa

    names = _column_names(df, "parquet")
    schema = df.attrs.get(ARROW_SCHEMA)
    exact = schema is not None or bool(df.attrs.get(ABSENT_KEYS))  # else pandas' NaN/NA/NaT mean "missing"
    known = {f.name: f.type for f in schema} if schema is not None else {}
    arrays = []
    for name, col in zip(names, df.columns):
        values = [
            None
            if v is MISSING or v is pd.NaT or (not exact and is_missing(v))
            else (v.item() if isinstance(v, np.generic) else v.tolist() if isinstance(v, np.ndarray) else v)
            for v in df[col].tolist()
        ]
        try:
            arr = pa.array(values, type=known.get(name), from_pandas=False)
        except (
            pa.ArrowInvalid,
            pa.ArrowTypeError,
            pa.ArrowNotImplementedError,
            OverflowError,
            TypeError,
            ValueError,
        ) as exc:
            raise CannotHold(
                f"column {quoted(name)} cannot be written as parquet: {str(exc).splitlines()[0][:160]} "
                "(Parquet needs one type per column); write .jsonl"
            ) from None
        for i, (before, after) in enumerate(zip(values, arr.to_pylist())):
            if not _same(before, after):
                raise CannotHold(
                    f"{_where(name, i)}: parquet would change {before!r} into {after!r} (Parquet "
                    "needs one type per column, and the same keys in every record); write .jsonl"
                )
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=names)


def _serialise(df: pd.DataFrame, fmt: str, header: bool = True, first_row: int = 0) -> bytes:
    if fmt == "jsonl":
        records = _json_records(df, fmt, first_row)
        return "".join(_dump_json(r, separators=(",", ":")) + "\n" for r in records).encode("utf-8")
    if fmt == "json":
        return (_dump_json(_json_records(df, fmt), indent=1) + "\n").encode("utf-8")
    if fmt in ("csv", "tsv"):
        data = _delimited(df, fmt, header, first_row)
        # A file's leading U+FEFF is read as the encoding mark and dropped: a header whose first name starts
        # with that character gets a mark of its own in front, so the name's own survives the round trip.
        return codecs.BOM_UTF8 + data if data.startswith(codecs.BOM_UTF8) else data
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    try:
        pq.write_table(_arrow_table(df), buf)
    except (pa.ArrowException, ValueError, TypeError) as exc:  # e.g. a struct with no fields
        raise CannotHold(f"cannot write as parquet: {str(exc).splitlines()[0][:160]}; write .jsonl") from None
    return buf.getvalue()


def serialise(df: pd.DataFrame, fmt: str, gz: bool = False, header: bool = True, first_row: int = 0) -> bytes:
    """The bytes a dataset file of this format holds; CannotHold (one line) for a value it cannot hold.
    For a later chunk of a CSV/TSV/JSONL file: no `header`, and messages count rows from `first_row`."""
    if not isinstance(df, pd.DataFrame):
        raise MixaugError(f"write_dataset takes a pandas DataFrame, not a {type(df).__name__}")
    if isinstance(df.index, pd.MultiIndex) or df.index.name is not None:
        names = [n for n in df.index.names if n is not None] or ["(unnamed levels)"]
        raise CannotHold(f"the frame's index ({', '.join(map(str, names))}) would not be written; reset_index() first")
    try:
        data = _serialise(df, fmt, header, first_row)
    except UnicodeEncodeError:
        raise CannotHold("a value holds a lone surrogate (not Unicode text), which a UTF-8 file cannot hold") from None
    except RecursionError:
        raise CannotHold(f"a value is nested too deeply to write as {fmt.upper()}") from None
    if not gz:
        return data
    packer = GzipStream()
    return packer.compress(data) + packer.flush()


class GzipStream:
    """gzip bytes made piece by piece, the same whatever the pieces and the Python version: a fixed header
    (no name, mtime 0, OS "unknown"; gzip.compress's OS byte differs between Python versions), raw deflate
    at level 9, the CRC-32/size trailer."""

    HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"

    def __init__(self):
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
        self._crc = 0
        self._size = 0
        self._started = False

    def compress(self, data: bytes) -> bytes:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        head = b"" if self._started else self.HEADER
        self._started = True
        return head + self._deflate.compress(data)

    def flush(self) -> bytes:
        head = b"" if self._started else self.HEADER
        self._started = True
        return head + self._deflate.flush() + struct.pack("<LL", self._crc, self._size & 0xFFFFFFFF)


def check_representable(df: pd.DataFrame, path: str | Path, fmt: str | None = None) -> int:
    """Before any work: fail if the output format cannot hold a value of df. Returns the bytes df takes."""
    fmt, gz = detect_format(path, fmt)
    return len(serialise(df, fmt, gz))
