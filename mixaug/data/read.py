"""Reading a dataset file: exact values in, or one line saying why not; bounded before anything is allocated.

Every reader returns a DataFrame of object columns holding the file's own values as Python objects, in
the file's column order (see `mixaug.data`'s docstring for the values of each format). Input is read as a
stream, never inflated whole (the MAX_ bounds below)."""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import itertools
import json
import math
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ..errors import MixaugError
from .columns import column_list, quoted
from .formats import ABSENT_KEYS, ARROW_SCHEMA, MISSING, detect_format

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


READ_PIECE = 16 << 20  # a whole input grows by at most this much at a time: memory follows the bytes that come


def _read_bytes(path: str | Path, gz: bool, limit: int) -> bytearray:
    """A whole input of at most `limit` bytes (after decompression), read in bounded pieces. Before a byte is
    read, a named input must be a regular file (or a pipe) no larger than `limit`: a device such as /dev/zero
    never ends, and a file that is too large is refused without holding any of it."""
    too_big = MixaugError(f"{path}: more than {limit >> 20} MiB to read whole")
    if str(path) != "-":
        check_readable(path)
        info = os.stat(path)
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
            raise MixaugError(f"{path}: not a regular file (a device or socket is not a dataset)")
        if stat.S_ISREG(info.st_mode) and not gz and info.st_size > limit:
            raise too_big
    data = bytearray()
    with _input_stream(path, gz) as fh:
        while len(data) <= limit:
            piece = fh.read(min(READ_PIECE, limit + 1 - len(data)))
            if not piece:
                break
            data += piece
    if len(data) > limit:
        raise too_big
    return data  # a bytearray: no second copy of what may be gigabytes


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
