"""Reading and writing a dataset in chunks of rows, so that a file larger than memory can pass through.

The parsers, values and one-line errors are `read.read_dataset`'s and the bytes are `serialise.serialise`'s: a
file read and written here in chunks comes out byte-identical to the whole-file path (tested). Line
formats only (JSONL, CSV, TSV, gzipped or not): a JSON array or a Parquet file is read whole.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ..errors import MixaugError
from .formats import detect_format
from .read import (
    _frame_from_records,
    check_readable,
    delimited_frame,
    delimited_rows,
    jsonl_records,
    text_lines,
    universal,
)
from .serialise import GzipStream, serialise
from .write import _open_staged, _seal_staged, _write_error, write_files_atomic, write_stdout

STREAMABLE = ("jsonl", "csv", "tsv")
CHUNK_ROWS = 4096
CHUNK_BYTES = 32 * 2**20  # a chunk also ends after this much of the file: wide rows make smaller chunks


def streamable(path: str | Path, fmt: str | None = None) -> bool:
    """A regular file (not stdin, a pipe or a FIFO: those can be read once only) in a line format, which
    can be read in chunks, pass after pass."""
    if str(path) == "-" or detect_format(path, fmt)[0] not in STREAMABLE:
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


class ChunkedReader:
    """A dataset file read in chunks of rows. Construction reads the whole file once (every error the
    whole-file reader would give, and the column order, which in JSONL is the order keys first appear);
    `chunks()` then reads it again, one DataFrame of at most `chunk_rows` rows at a time."""

    def __init__(
        self,
        path: str | Path,
        fmt: str | None = None,
        limit: int | None = None,
        chunk_rows: int = CHUNK_ROWS,
        chunk_bytes: int = CHUNK_BYTES,
    ):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise MixaugError(f"limit must be a whole number >= 1 (got {limit!r})")
        self.path, self.limit, self.chunk_rows, self.chunk_bytes = path, limit, chunk_rows, chunk_bytes
        self._read = 0  # characters of the file read so far by the current pass
        self.fmt, self.gz = detect_format(path, fmt)
        if self.fmt not in STREAMABLE:
            raise MixaugError(f"{path}: only {', '.join(STREAMABLE)} files can be read in chunks")
        check_readable(path)
        if not streamable(path, self.fmt):
            raise MixaugError(
                f"{path} is not a regular file: a pipe can be read once only, and this reads it three times"
            )
        self.columns: list[str] = []
        total = 0
        if self.fmt == "jsonl":
            seen: dict[str, None] = {}
            for record in self._rows():
                seen.update(dict.fromkeys(record))
                total += 1
            self.columns = list(seen)
        else:
            rows = self._rows()
            self.columns = next(rows, [])
            total = sum(1 for _ in rows)
        self.rows = total if limit is None else min(total, limit)

    def _counted(self, lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            self._read += len(line)
            yield line

    def _rows(self) -> Iterator:
        self._read = 0
        lines = text_lines(self.path, self.gz)
        lines = self._counted(universal(lines) if self.fmt == "csv" else lines)
        if self.fmt == "jsonl":
            return jsonl_records(lines, self.path)
        return delimited_rows(lines, self.path, self.fmt)

    def _frame(self, rows: list, start: int) -> pd.DataFrame:
        if self.fmt == "jsonl":
            return _frame_from_records(rows, self.columns, start)
        if not self.columns:
            return pd.DataFrame()
        return delimited_frame(self.columns, rows, start)

    def empty(self) -> pd.DataFrame:
        """No rows, the file's columns (and the attrs its chunks carry)."""
        return self._frame([], 0)

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The rows (the first `limit`), in frames numbered by their row in the file."""
        rows = self._rows()
        if self.fmt != "jsonl":
            next(rows, None)  # the header
        batch: list = []
        start = 0
        mark = self._read
        for row in rows:
            if start + len(batch) >= self.rows:
                break
            batch.append(row)
            if len(batch) == self.chunk_rows or self._read - mark >= self.chunk_bytes:
                yield self._frame(batch, start)
                start += len(batch)
                batch = []
                mark = self._read
        if batch:
            yield self._frame(batch, start)
            start += len(batch)
        if start != self.rows:  # the file was changed (or is not a file) between passes
            raise MixaugError(f"{self.path} changed while it was read: {self.rows} rows at first, {start} now")


class ChunkedWriter:
    """A dataset written chunk by chunk: to a temp file beside the output, which `commit()` renames into
    place (with any extra files, all or none), or straight to stdout for '-'. `discard()` (or an error)
    leaves nothing behind. Chunks must come in row order."""

    def __init__(self, path: str | Path, fmt: str | None = None):
        self.path = path
        self.fmt, self.gz = detect_format(path, fmt)
        if self.fmt not in STREAMABLE:
            raise MixaugError(f"{path}: only {', '.join(STREAMABLE)} files can be written in chunks")
        self.rows = 0  # rows written so far
        self._header = True
        self._zip = GzipStream() if self.gz else None
        self._staged: tuple | None = None
        self._stdout = str(path) == "-"
        if not self._stdout:
            try:
                self._fh, tmp, target = _open_staged(path)
            except OSError as exc:
                raise _write_error(path, exc) from None
            self._staged = (tmp, target)

    def write(self, df: pd.DataFrame) -> None:
        data = serialise(df, self.fmt, header=self._header, first_row=self.rows)
        self._header = False
        self.rows += len(df)
        self._put(self._zip.compress(data) if self._zip is not None else data)

    def _put(self, data: bytes) -> None:
        if self._stdout:
            write_stdout(data)
            return
        try:
            self._fh.write(data)
        except OSError as exc:
            self.discard()
            raise _write_error(self.path, exc) from None

    def commit(self, extra: list[tuple[str | Path, bytes]] = ()) -> None:
        """Finish the file and put it (and `extra` files) in place."""
        if self._zip is not None:
            self._put(self._zip.flush())
            self._zip = None
        if self._stdout:
            if extra:
                write_files_atomic(list(extra))
            return
        tmp, target = self._staged
        try:
            _seal_staged(self._fh, tmp, target)
        except OSError as exc:
            self.discard()
            raise _write_error(self.path, exc) from None
        self._staged = None
        write_files_atomic(list(extra), staged=[(tmp, target, self.path)])

    def discard(self) -> None:
        if self._staged is not None:
            tmp, _ = self._staged
            self._staged = None
            try:
                self._fh.close()
            except OSError:  # closing flushes, and the disk may still be full
                pass
            finally:
                Path(tmp).unlink(missing_ok=True)
