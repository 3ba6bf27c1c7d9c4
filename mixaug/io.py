"""Reading and writing datasets: format by extension, strict UTF-8, atomic writes.

Every reader returns a DataFrame whose columns are exactly the file's, so original rows pass through
unchanged; CSV/TSV cells are read as strings so that nothing ("007", "NA") is reinterpreted.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from .errors import MixaugError

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
TEXT_COLUMN_CANDIDATES = ("text", "sentence", "content")


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
        raise MixaugError(
            f"unknown file extension '.{ext}' for {path}: use .jsonl, .json, .csv, .tsv, .parquet "
            "(or .gz of the text formats), or pass --input-format/--output-format"
        )
    if gz and fmt == "parquet":
        raise MixaugError(f"{path}: parquet is compressed already; .parquet.gz is not supported")
    return fmt, gz


def _read_bytes(path: str | Path, gz: bool) -> bytes:
    if str(path) == "-":
        data = sys.stdin.buffer.read()
    else:
        p = Path(path)
        if not p.exists():
            raise MixaugError(f"input file not found: {path}")
        if p.is_dir():
            raise MixaugError(f"input is a directory, not a file: {path}")
        data = p.read_bytes()
    if gz:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise MixaugError(f"{path}: not a valid gzip file ({exc})") from None
    return data


def _decode_utf8(data: bytes, path: str | Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MixaugError(
            f"{path}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at line {line}); re-encode the file as UTF-8"
        ) from None


def _read_jsonl(text: str, path: str | Path) -> pd.DataFrame:
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MixaugError(f"{path}: malformed JSON on line {lineno}: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise MixaugError(f"{path}: line {lineno} is not a JSON object")
        records.append(obj)
    return pd.DataFrame.from_records(records)


def _read_json(text: str, path: str | Path) -> pd.DataFrame:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MixaugError(f"{path}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise MixaugError(f"{path}: a .json dataset must be a list of records (objects)")
    return pd.DataFrame.from_records(obj)


def read_dataset(path: str | Path, fmt: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """Read a dataset file (or '-' for stdin) into a DataFrame with the file's own columns."""
    fmt, gz = detect_format(path, fmt)
    data = _read_bytes(path, gz)
    if fmt == "parquet":
        try:
            df = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow raises several types for a bad file
            raise MixaugError(f"{path}: cannot read as parquet ({type(exc).__name__}: {exc})") from None
    else:
        text = _decode_utf8(data, path)
        if fmt == "jsonl":
            df = _read_jsonl(text, path)
        elif fmt == "json":
            df = _read_json(text, path)
        else:
            sep = "," if fmt == "csv" else "\t"
            if not text.strip():
                df = pd.DataFrame()
            else:
                try:
                    df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
                except pd.errors.ParserError as exc:
                    raise MixaugError(f"{path}: malformed {fmt.upper()}: {str(exc).strip()}") from None
    if limit is not None:
        df = df.head(limit)
    return df.reset_index(drop=True)


def _serialise(df: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "jsonl":
        return df.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    if fmt == "json":
        return df.to_json(orient="records", force_ascii=False, indent=1).encode("utf-8")
    if fmt in ("csv", "tsv"):
        return df.to_csv(index=False, sep="," if fmt == "csv" else "\t", lineterminator="\n").encode("utf-8")
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def check_writable(path: str | Path, overwrite: bool) -> None:
    """Fail before any work is done if the output exists (without --overwrite) or its folder is missing."""
    if str(path) == "-":
        return
    p = Path(path)
    if p.exists() and not overwrite:
        raise MixaugError(f"output file exists: {path} (pass --overwrite to replace it)")
    if not p.parent.exists():
        raise MixaugError(f"output folder does not exist: {p.parent}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_readable(folder: Path) -> None:
    """Folders from mkdtemp are 0700 and some writers make 0600 files: apply the usual umask modes."""
    mask = _umask()
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


@contextmanager
def atomic_folder(dest: str | Path):
    """Yield a temp folder beside `dest`; on success it replaces `dest` whole (readers never see half)."""
    import shutil

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        make_readable(tmp)
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so a reader never sees a partial file."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode a plain open() would
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_dataset(df: pd.DataFrame, path: str | Path, fmt: str | None = None, overwrite: bool = False) -> None:
    """Write a DataFrame by extension (or '-' for stdout), atomically."""
    fmt, gz = detect_format(path, fmt)
    data = _serialise(df, fmt)
    if gz:
        data = gzip.compress(data, mtime=0)
    if str(path) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    check_writable(path, overwrite)
    write_bytes_atomic(path, data)


def resolve_text_column(df: pd.DataFrame, requested: str | None) -> str:
    """Pick the text column: the requested one, or the first of text/sentence/content present."""
    if len(df) == 0:
        raise MixaugError("the dataset is empty (no rows)")
    cols = list(map(str, df.columns))
    if requested:
        if requested not in cols:
            raise MixaugError(f"text column '{requested}' not found; columns found: {', '.join(cols) or '(none)'}")
        return requested
    for cand in TEXT_COLUMN_CANDIDATES:
        if cand in cols:
            return cand
    raise MixaugError(
        f"no text column (looked for {', '.join(TEXT_COLUMN_CANDIDATES)}); columns found: "
        f"{', '.join(cols) or '(none)'}; pass --text-column"
    )


def resolve_label_column(df: pd.DataFrame, requested: str | None) -> str | None:
    """The requested label column (must exist), else 'label' if present, else None (unlabelled)."""
    cols = list(map(str, df.columns))
    if requested:
        if requested not in cols:
            raise MixaugError(f"label column '{requested}' not found; columns found: {', '.join(cols)}")
        return requested
    return "label" if "label" in cols else None
