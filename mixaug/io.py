"""Reading and writing datasets: exact values in, the same values out, or one line saying why not.

Every reader returns a DataFrame of object columns holding the file's own values as Python objects, in
the file's column order: JSON ints stay ints of any size, floats keep every bit, CSV/TSV cells stay the
strings they were ("007", "NA"), Parquet values keep their Arrow type (remembered in `df.attrs`, so a
Parquet file is written back with its own schema). A JSON key that a row lacks is `MISSING` (pd.NA) and
stays absent when that row is written as JSON. A value the output format cannot hold is refused by
`check_representable` before any work, never rounded, renamed or dropped.

TSV is the IANA text/tab-separated-values format (as GLUE's files are): no quoting, so a `"` is an
ordinary character, and a value holding a tab or a line break cannot be written as TSV.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import decimal
import errno
import gzip
import io
import itertools
import json
import math
import os
import re
import stat
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import MixaugError

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


# -- reading ------------------------------------------------------------------------------------------


def check_readable(path: str | Path) -> None:
    """An input path names something to read (not nothing, not a folder)."""
    p = Path(path)
    if not p.exists():
        raise MixaugError(f"input file not found: {path}")
    if p.is_dir():
        raise MixaugError(f"input is a directory, not a file: {path}")


# Bounds on what one read may hold, whatever the file claims: a small gzip can inflate a thousandfold and a
# Parquet footer can declare any number of rows, so each is checked before the memory is taken.
MAX_LINE_BYTES = 64 << 20  # one line of a text file (a JSONL row; a CSV record may span several)
MAX_CELLS = 20_000_000  # values (rows x columns) of a table read whole; more: --limit, or the streamed engine
MAX_JSON_BYTES = 1 << 30  # a .json array is one document, parsed whole
MAX_PARQUET_BYTES = 4 << 30  # a Parquet table's uncompressed size, as its row groups declare it


@contextmanager
def _input_stream(path: str | Path, gz: bool):
    """The input's bytes as a stream (a file, or stdin for '-'), decompressed on the fly when gzipped:
    nothing is read whole. A bad gzip or a read error is one line."""
    if str(path) != "-":
        check_readable(path)
    try:
        with contextlib.ExitStack() as stack:
            raw = sys.stdin.buffer if str(path) == "-" else stack.enter_context(open(path, "rb"))
            yield stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")) if gz else raw
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise MixaugError(f"{path}: not a valid gzip file ({exc})") from None
    except OSError as exc:
        raise MixaugError(f"cannot read {path}: {exc.strerror or exc}") from None


def binary_lines(path: str | Path, gz: bool) -> Iterator[bytes]:
    """The input's lines as bytes, split at b"\\n" only (UTF-8 never holds that byte inside a character),
    ends kept; a line longer than MAX_LINE_BYTES is refused before more of it is read."""
    with _input_stream(path, gz) as fh:
        for lineno in itertools.count(1):
            line = fh.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_LINE_BYTES:
                raise MixaugError(f"{path}: line {lineno} is longer than {MAX_LINE_BYTES >> 20} MiB")
            yield line


def text_lines(path: str | Path, gz: bool) -> Iterator[str]:
    """Decoded lines, "\n" kept; a BOM at the start dropped; bad UTF-8 named by its line."""
    for lineno, raw in enumerate(binary_lines(path, gz), start=1):
        if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MixaugError(
                f"{path}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at line {lineno}); re-encode the file as UTF-8"
            ) from None


_LONE_CR = re.compile("(?<=\r)(?!\n)")  # where universal-newline reading would end a line


def universal(lines: Iterable[str]) -> Iterator[str]:
    """Lines as CSV reading wants them: also ended at a lone \\r (as io.StringIO(newline="") does)."""
    for line in lines:
        yield from (part for part in _LONE_CR.split(line) if part)


def _read_bytes(path: str | Path, gz: bool, limit: int) -> bytes:
    """A whole input of at most `limit` bytes (after decompression), read in bounded pieces."""
    with _input_stream(path, gz) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise MixaugError(f"{path}: more than {limit >> 20} MiB to read whole")
    return data


def _decode_utf8(data: bytes, path: str | Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MixaugError(
            f"{path}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at line {line}); re-encode the file as UTF-8"
        ) from None


def _refuse_cells(path: str | Path) -> MixaugError:
    return MixaugError(f"{path}: more than {MAX_CELLS:,} values to hold in memory; read fewer rows with --limit")


def _values(value) -> int:
    """How many values a parsed JSON value holds (itself included)."""
    if isinstance(value, dict):
        return 1 + sum(_values(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_values(v) for v in value)
    return 1


def _held(items: Iterable, path: str | Path, limit: int | None, width) -> list:
    """The first `limit` items (all, without one), refused once they hold more than MAX_CELLS values
    (`width(item)` each); the items after them are still read (each error of the file is raised, whatever
    the limit) but not kept, so what a read costs in memory is bounded whatever the file's compression."""
    held, cells = [], 0
    for item in items:
        if limit is not None and len(held) >= limit:
            continue
        cells += width(item)
        if cells > MAX_CELLS:
            raise _refuse_cells(path)
        held.append(item)
    return held


class _JsonProblem(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _JsonProblem(f"duplicate key '{key}'")
        obj[key] = value
    return obj


def _finite_float(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        raise _JsonProblem(f"number {literal[:40]} is too large for a double")
    return value


def _no_constants(name: str):
    raise _JsonProblem(f"{name} is not JSON")


def _parse_json(text: str):
    """Strict JSON: no duplicate keys, no NaN/Infinity tokens, no number that overflows a double, no string
    with a lone surrogate escape (not Unicode text: no encoder, and no UTF-8 file, could take it)."""
    obj = json.loads(
        text, object_pairs_hook=_object_without_duplicates, parse_float=_finite_float, parse_constant=_no_constants
    )
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(obj)
    if _SURROGATE_ESCAPE.search(text):
        _check_unicode(obj)
    return obj


MAX_DEPTH = 64  # nesting levels of a JSON value: deeper ones are refused (no writer should have to recurse far)


def _check_depth(obj) -> None:
    stack = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            if depth >= MAX_DEPTH:
                raise _JsonProblem(f"a value is nested more than {MAX_DEPTH} levels deep")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _check_unicode(obj) -> None:
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            raise _JsonProblem(
                "a string holds a lone surrogate escape (\\ud800-\\udfff), which is not Unicode text"
            ) from None
    elif isinstance(obj, list):
        for v in obj:
            _check_unicode(v)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_unicode(k)
            _check_unicode(v)


def _frame_from_records(records: list[dict], columns: list[str] | None = None, start: int = 0) -> pd.DataFrame:
    """Columns in first-seen key order (or `columns`); a key a row lacks is MISSING there. Object columns:
    no coercion. Rows numbered from `start`."""
    if columns is None:
        columns = list(dict.fromkeys(k for r in records for k in r))
    index = pd.RangeIndex(start, start + len(records))
    df = pd.DataFrame(
        {c: pd.Series([r.get(c, MISSING) for r in records], dtype=object, index=index) for c in columns},
        index=index,
    )
    df.attrs[ABSENT_KEYS] = True
    return df


def jsonl_records(lines: Iterable[str], path: str | Path) -> Iterator[dict]:
    """The objects of JSONL lines (each may keep its "\n"; split on "\n" only: U+2028 & co. are text)."""
    for lineno, line in enumerate(lines, start=1):
        line = line[:-1] if line.endswith("\n") else line
        if not line.strip(" \t\r"):
            continue
        try:
            obj = _parse_json(line)
        except _JsonProblem as exc:
            raise MixaugError(f"{path}: line {lineno}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise MixaugError(f"{path}: malformed JSON on line {lineno}: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4,300 digits
            raise MixaugError(f"{path}: line {lineno}: {str(exc).splitlines()[0][:120]}") from None
        if not isinstance(obj, dict):
            raise MixaugError(f"{path}: line {lineno} is not a JSON object")
        yield obj


def _read_jsonl(path: str | Path, gz: bool, limit: int | None) -> pd.DataFrame:
    """The rows held are the first `limit`; the columns are those of the whole file (in the order keys first
    appear), as the chunked reader has them."""
    columns: dict[str, None] = {}

    def keyed(records: Iterable[dict]) -> Iterator[dict]:
        for record in records:
            columns.update(dict.fromkeys(record))
            yield record

    held = _held(keyed(jsonl_records(text_lines(path, gz), path)), path, limit, _values)
    return _frame_from_records(held, list(columns))


def _read_json(text: str, path: str | Path) -> pd.DataFrame:
    if 1 + sum(text.count(mark) for mark in ",[{") > MAX_CELLS:  # each value but the first follows one of these
        raise _refuse_cells(path)
    try:
        obj = _parse_json(text)
    except _JsonProblem as exc:
        raise MixaugError(f"{path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise MixaugError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise MixaugError(f"{path}: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise MixaugError(f"{path}: a .json dataset must be a list of records (objects)")
    return _frame_from_records(obj)


def _check_header(header: list[str], path: str | Path) -> None:
    for i, name in enumerate(header, start=1):
        if name == "":
            raise MixaugError(f"{path}: column {i} of the header has no name; columns found: {column_list(header)}")
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        if name in seen:
            raise MixaugError(
                f"{path}: duplicate column name {quoted(name)} (columns {seen[name]} and {i} of the header)"
            )
        seen[name] = i


def _records_csv(lines: Iterable[str], path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """lines: as universal-newline reading gives them (ends kept, split at \n, \r and \r\n)."""
    reader = csv.reader(lines, strict=True)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as exc:
        raise MixaugError(f"{path}: malformed CSV at line {reader.line_num}: {exc}") from None


def _records_tsv(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """lines: split at "\n" only (ends kept or not); a CRLF line end loses its \r."""
    for lineno, line in enumerate(lines, start=1):
        line = line[:-1] if line.endswith("\n") else line
        if line.endswith("\r"):
            line = line[:-1]  # CRLF line ends
        yield lineno, line.split("\t")


def delimited_rows(lines: Iterable[str], path: str | Path, fmt: str) -> Iterator[list[str]]:
    """CSV (RFC 4180 quoting) or TSV (no quoting): the header first, then each row, every cell a string and
    every row as wide as the header. `lines` as `_records_csv` / `_records_tsv` take them."""
    header: list[str] | None = None
    records = _records_csv(lines, path) if fmt == "csv" else _records_tsv(lines)
    for lineno, row in records:
        if row == [] or (fmt == "tsv" and row == [""] and (header is None or len(header) > 1)):
            continue  # a blank line (in a one-column TSV, an empty value; in CSV, "" is an empty value)
        if header is None:
            header = row
            _check_header(header, path)
            yield header
            continue
        if len(row) != len(header):
            hint = " (a trailing delimiter?)" if len(row) == len(header) + 1 and row[-1] == "" else ""
            raise MixaugError(
                f"{path}: line {lineno} has {len(row)} fields but the header has {len(header)}{hint}; "
                f"columns found: {column_list(header)}"
            )
        yield row


def _read_delimited(path: str | Path, gz: bool, fmt: str, limit: int | None) -> pd.DataFrame:
    lines = text_lines(path, gz)
    rows = delimited_rows(universal(lines) if fmt == "csv" else lines, path, fmt)
    header = next(rows, None)
    if header is None:
        return pd.DataFrame()
    return delimited_frame(header, _held(rows, path, limit, len))


def delimited_frame(header: list[str], rows: list[list[str]], start: int = 0) -> pd.DataFrame:
    """Object columns of strings, rows numbered from `start`."""
    index = pd.RangeIndex(start, start + len(rows))
    return pd.DataFrame(
        {name: pd.Series([r[i] for r in rows], dtype=object, index=index) for i, name in enumerate(header)},
        index=index,
    )


def _parquet_table(data: bytes, path: str | Path, limit: int | None):
    """The first `limit` rows (all, without one) of a Parquet file, read only after its footer's row count,
    width and the uncompressed size of the row groups they need are within bounds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(pa.BufferReader(data))
    meta = parquet.metadata
    rows = meta.num_rows if limit is None else min(meta.num_rows, limit)
    if rows * max(1, meta.num_columns) > MAX_CELLS:
        raise _refuse_cells(path)
    size, covered = 0, 0  # uncompressed bytes of the rows to read, as the row groups declare them
    for i in range(meta.num_row_groups):
        if covered >= rows:
            break
        group = meta.row_group(i)
        take = min(group.num_rows, rows - covered)
        size += group.total_byte_size * take // max(1, group.num_rows)
        covered += take
    if size > MAX_PARQUET_BYTES:
        raise MixaugError(
            f"{path}: declares {size >> 20:,} MiB of uncompressed data, more than {MAX_PARQUET_BYTES >> 20:,} MiB"
        )
    if rows == meta.num_rows:
        return parquet.read()
    batches, have = [], 0  # the first rows only, decoded a batch at a time
    for batch in parquet.iter_batches(batch_size=min(rows, 65536)):
        if have >= rows:
            break
        batches.append(batch)
        have += batch.num_rows
    return pa.Table.from_batches(batches, schema=parquet.schema_arrow).slice(0, rows)


def _read_parquet(data: bytes, path: str | Path, limit: int | None) -> pd.DataFrame:
    import pyarrow as pa

    try:
        table = _parquet_table(data, path, limit)
    except MixaugError:
        raise
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise MixaugError(f"{path}: cannot read as parquet ({type(exc).__name__}: {str(exc)[:200]})") from None
    names = table.column_names
    _check_header(names, path)
    try:
        df = pd.DataFrame(
            {name: pd.Series(table.column(name).to_pylist(), dtype=object) for name in names},
            index=pd.RangeIndex(table.num_rows),
        )
    except Exception as exc:  # a value Python cannot represent (e.g. a date out of range)
        raise MixaugError(f"{path}: cannot read a parquet value ({type(exc).__name__}: {str(exc)[:200]})") from None
    for name in names:  # Python's time/datetime stop at microseconds where Arrow may hold nanoseconds
        column = table.column(name)
        if pa.types.is_temporal(column.type) and not pa.chunked_array(
            [pa.array(df[name].tolist(), type=column.type)], type=column.type
        ).equals(column):
            raise MixaugError(
                f"{path}: column {quoted(name)} ({column.type}) holds values Python cannot hold exactly (e.g. nanoseconds "
                "of a time of day); cast it to another type first"
            )
    df.attrs[ARROW_SCHEMA] = table.schema.remove_metadata()
    return df


def read_dataset(path: str | Path, fmt: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Read a dataset file (or '-' for stdin) into a DataFrame with the file's own columns and values."""
    if not isinstance(path, (str, os.PathLike)):
        raise MixaugError(f"read_dataset takes a path or '-', not a {type(path).__name__}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise MixaugError(f"limit must be a whole number >= 1 (got {limit!r})")
    fmt, gz = detect_format(path, fmt)
    if fmt == "parquet":
        df = _read_parquet(_read_bytes(path, gz, MAX_PARQUET_BYTES), path, limit)
    elif fmt == "json":
        df = _read_json(_decode_utf8(_read_bytes(path, gz, MAX_JSON_BYTES), path), path)
        df = df.head(limit) if limit is not None else df
    elif fmt == "jsonl":
        df = _read_jsonl(path, gz, limit)
    else:
        df = _read_delimited(path, gz, fmt, limit)
    return df.reset_index(drop=True)


# -- values -> each format ----------------------------------------------------------------------------


def is_missing(value) -> bool:
    """None, MISSING (pd.NA), NaT or a float NaN: no value. Never raises, whatever the value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def quoted(name) -> str:
    """A column name for a one-line message: 'name', or JSON-escaped where it holds a line break or the like."""
    name = str(name)
    return f"'{name}'" if name.isprintable() else json.dumps(name, ensure_ascii=False)


def column_list(columns) -> str:
    """Column names for a one-line message: as they are, JSON-escaped where one holds a line break."""
    names = [str(c) if str(c).isprintable() else json.dumps(str(c), ensure_ascii=False) for c in columns]
    return ", ".join(names) or "(none)"


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


# -- the write path -----------------------------------------------------------------------------------


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_output_path(
    path: str | Path, overwrite: bool, inputs: Iterable[str | Path] = (), min_free_bytes: int = 0, what: str = "output"
) -> None:
    """Before any work: the path can take a new file (a regular file or nothing there, folder writable,
    space for at least min_free_bytes) and is none of `inputs`. A symlink is written through to its target."""
    if str(path) == "-":
        return
    if str(path).endswith(("/", os.sep)):
        raise MixaugError(f"{what} {path} ends with '/', so it names a directory; name a file")
    target = Path(os.path.realpath(path))
    for other in inputs:
        if str(other) != "-" and os.path.lexists(other) and _same_file(path, other):
            raise MixaugError(f"{what} {path} is the same file as {other}; choose another path")
    if target.exists():
        mode = target.stat().st_mode
        if stat.S_ISDIR(mode):
            raise MixaugError(f"{what} {path} is a directory; name a file")
        if not stat.S_ISREG(mode):
            raise MixaugError(
                f"{what} {path} is not a regular file (a device, FIFO or socket); mixaug writes "
                "regular files only (use '-' for stdout)"
            )
        if not overwrite:
            raise MixaugError(f"{what} file exists: {path} (pass --overwrite to replace it)")
    folder = target.parent
    if not folder.is_dir():
        raise MixaugError(f"{what} folder does not exist: {folder}")
    try:  # the one sure test of "can I create a file here": create one
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise MixaugError(f"cannot write the {what} in {folder}: {exc.strerror or exc}") from None
    if min_free_bytes:
        try:
            st = os.statvfs(folder)
            free = st.f_bavail * st.f_frsize
        except (OSError, AttributeError):
            free = None
        if free is not None and free < min_free_bytes:
            raise MixaugError(
                f"not enough space for the {what} {path}: it needs at least {min_free_bytes:,} bytes, "
                f"{free:,} are free in {folder}"
            )


def check_distinct(paths: dict[str, str | Path | None]) -> None:
    """Two outputs must not name the same file (or both stdout)."""
    named = [(what, p) for what, p in paths.items() if p is not None]
    for i, (wa, pa_) in enumerate(named):
        for wb, pb in named[i + 1 :]:
            if str(pa_) == "-" and str(pb) == "-":
                raise MixaugError(f"{wa} and {wb} cannot both go to stdout ('-')")
            if str(pa_) != "-" and str(pb) != "-" and os.path.realpath(pa_) == os.path.realpath(pb):
                raise MixaugError(f"{wa} and {wb} name the same file {pa_}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_readable(folder: Path) -> None:
    """Folders from mkdtemp are 0700 and some writers make 0600 files: apply the usual umask modes (to the
    folder's own files: chmod would follow a link to its target)."""
    mask = _umask()
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def _remove(path: Path) -> None:
    """Remove a file, a link (not what it points to) or a folder tree, if there."""
    import shutil

    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def atomic_folder(dest: str | Path):
    """Yield a temp folder beside `dest`; on success it replaces `dest` whole (readers never see half).
    A link at `dest` is replaced by the folder, never written through (see "files mixaug names"); the temp
    folder is new (mkdtemp), so what is written inside it meets no planted link."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        make_readable(tmp)
        old = dest.with_name(f".{dest.name}.old")
        _remove(old)
        if os.path.lexists(dest):
            os.replace(dest, old)
        os.replace(tmp, dest)
        _remove(old)
    except BaseException:
        _remove(tmp)
        raise


def _write_error(path: str | Path, exc: OSError) -> MixaugError:
    reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
    return MixaugError(f"cannot write {path}: {reason}; nothing was written")


def _open_staged(path: str | Path, follow: bool = True):
    """A temp file beside path's target, open for writing: (file, temp, target). With `follow` the target of
    a link at path is the one replaced; without, the link itself is."""
    target = Path(os.path.realpath(path)) if follow else Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    return os.fdopen(fd, "wb"), tmp, target


def _seal_staged(fh, tmp: str, target: Path) -> None:
    """Flush and close a staged file and give it the mode (and owner, where allowed) of the file it replaces."""
    with fh:
        fh.flush()
        os.fsync(fh.fileno())
    try:
        old = target.lstat()
        if stat.S_ISLNK(old.st_mode):  # a link being replaced: the file it points to lends nothing
            raise FileNotFoundError
    except FileNotFoundError:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode a plain open() would
    else:
        os.chmod(tmp, stat.S_IMODE(old.st_mode))
        try:
            os.chown(tmp, old.st_uid, old.st_gid)
        except OSError:
            pass


def _stage(path: str | Path, data: bytes) -> tuple[str, Path]:
    """Write data to a staged temp file; returns (temp, target)."""
    fh, tmp, target = _open_staged(path)
    try:
        fh.write(data)
        _seal_staged(fh, tmp, target)
    except BaseException:
        fh.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp, target


def write_files_atomic(files: list[tuple[str | Path, bytes]], staged: list[tuple[str, Path, str | Path]] = ()) -> None:
    """Write every file or none: all are staged as temp files first, then renamed into place. A failure
    (disk full, read-only folder) is one MixaugError naming the path, and leaves nothing behind.
    `staged`: (temp, target, path) of files already written to temp files (a streamed output), renamed first."""
    ready: list[tuple[str, Path, str | Path]] = list(staged)
    try:
        for path, data in files:
            try:
                ready.append((*_stage(path, data), path))
            except OSError as exc:
                raise _write_error(path, exc) from None
        for tmp, target, path in ready:
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise _write_error(path, exc) from None
    finally:
        for tmp, _, _ in ready:
            Path(tmp).unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so a reader never sees a partial file."""
    write_files_atomic([(path, data)])


def write_stdout(data: bytes) -> None:
    """Data to stdout; a reader that stopped early (`… -o - | head`) is not an error."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # as the Python docs advise: point stdout at devnull so exit does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def write_dataset(
    df: pd.DataFrame,
    path: str | Path,
    fmt: str | None = None,
    overwrite: bool = False,
    extra: list[tuple[str | Path, bytes]] = (),
) -> None:
    """Write a DataFrame by extension (or '-' for stdout), atomically; `extra` files (a stats JSON) are
    written with it, all or none."""
    fmt, gz = detect_format(path, fmt)
    data = serialise(df, fmt, gz)
    if str(path) == "-":
        if extra:
            write_files_atomic(list(extra))
        write_stdout(data)
        return
    check_output_path(path, overwrite)
    write_files_atomic([(path, data), *extra])


# -- files mixaug names --------------------------------------------------------------------------------
# A file the user names (-o, --report, --stats-json) is written through a link to its target: pointing an
# output at a link is the user's choice, as is an --out folder that is one. A file or folder mixaug names
# itself inside a folder (eval's report.md and journal, a run's state.json and train_log.jsonl, a checkpoint
# folder, the caches) is another matter: a link planted there must never redirect a write to what it points
# at. One rule per kind of write, all below:
#   whole files (write_named, named_file, atomic_folder) are made beside the name and renamed onto it, so a
#     link there is replaced by the new file, and its target is never opened;
#   appends (append_named) refuse a link, since appending means writing into whatever the name holds;
#   folders (named_folder) refuse a link, since everything below would land where it points;
#   copies (copy_named) take the files mixaug knows by name, refusing a link among them, and nothing else.
# Links are seen with lstat and O_NOFOLLOW: this stops a link planted before the run, not a race with a
# process that plants one while mixaug runs in the same folder.

_IS_A_LINK = "is a symbolic link (mixaug writes and copies no file of its own through a link)"


def _link_refused(path: str | Path) -> OSError:
    return OSError(errno.ELOOP, _IS_A_LINK, str(path))


def named_folder(root: str | Path, *names: str) -> Path:
    """root/names...: a folder mixaug names below a folder `root` that the user or the environment chose
    ($MIXAUG_CACHE, --out; it may itself be a link). A link at any of `names` is refused (OSError); one not
    there yet is left for the writer to make (mkdir makes a real folder)."""
    folder = Path(root)
    for name in names:
        folder = folder / name
        if folder.is_symlink():
            raise _link_refused(folder)
    return folder


@contextmanager
def named_file(path: str | Path):
    """An open binary file for a writer that takes one (np.save, savefig), staged beside `path` and renamed
    onto it on success: readers never see half, and a link at `path` is replaced, never written through."""
    fh, tmp, target = _open_staged(path, follow=False)
    try:
        yield fh
        _seal_staged(fh, tmp, target)
        os.replace(tmp, target)
    except BaseException:
        fh.close()
        Path(tmp).unlink(missing_ok=True)
        raise


def write_named(path: str | Path, data: bytes) -> None:
    """A whole file mixaug names itself (see named_file); a failure is one MixaugError naming the path."""
    try:
        with named_file(path) as fh:
            fh.write(data)
    except OSError as exc:
        raise _write_error(path, exc) from None


def _open_named(path: str | Path, flags: int) -> int:
    """os.open without following a link at path (refused as one, not ELOOP's 'too many levels'), and only
    onto a regular file: a FIFO would block the run for ever."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _link_refused(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def append_named(path: str | Path, data: bytes) -> None:
    """Append data to a file mixaug names itself (a journal, a log), creating it; a link at `path` is refused
    (OSError). Written whole in one go, after a newline if the file's last line was cut short, and synced, so
    a failed or interrupted append spoils at most its own line and a finished one survives a crash."""
    fd = _open_named(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            if n <= 0:
                raise OSError(errno.EIO, "short write")
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_named(source: str | Path, dest: str | Path, names: Iterable[str]) -> None:
    """Copy the files `names` of folder `source`, and nothing else, into a new folder `dest`; a link at
    `source` or at any of them is refused (OSError): a copy carries what mixaug wrote, never a file a
    link points to."""
    import shutil

    source, dest = Path(source), Path(dest)
    if source.is_symlink():
        raise _link_refused(source)
    dest.mkdir()
    for name in names:
        with os.fdopen(_open_named(source / name, os.O_RDONLY), "rb") as src, open(dest / name, "xb") as out:
            shutil.copyfileobj(src, out)


def read_small(path: str | Path, where: str, limit: int) -> bytes:
    """A small file mixaug reads (a manifest, a model folder's modules.json, a run's state.json) within
    `limit` bytes: a huge one cannot exhaust memory. Too large or unreadable is one MixaugError starting
    with `where`, which names the file."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(limit + 1)
    except OSError as exc:
        raise MixaugError(f"{where} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > limit:
        raise MixaugError(f"{where} is larger than {limit >> 20} MiB")
    return raw


def read_json_file(path: str | Path, where: str, limit: int) -> object:
    """A small JSON file (see read_small); not JSON is one MixaugError too."""
    raw = read_small(path, where, limit)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise MixaugError(f"{where} is not valid JSON") from None


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
