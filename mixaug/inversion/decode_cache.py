"""The decode cache: decoded texts kept on disk so a re-run reuses them.

It is only an optimisation, so it must never fail a run: a damaged line is skipped, and a cache that
cannot be read or written (permissions, read-only or full disk, a file where a folder should be) turns
memory-only for the rest of the process after one MixaugWarning. A file the trust rule refuses (cache.py:
not the user's alone, not a regular file) is never read, nor written to. The file is read line by line,
each line within MAX_LINE_BYTES; one past MAX_BYTES is not read but started afresh (one warning), so a
cache that grows with every run stays bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..cache import MISSING, make_folder, open_trusted, why_untrusted
from ..data.write import append_named, named_folder, write_named
from ..errors import MixaugWarning

if TYPE_CHECKING:
    from .invert import DecodeOptions

VERSION = 3  # in every line and in the file name, so files of an older layout are never read
MAX_BYTES = 256 << 20  # a file past this is not read but started afresh
MAX_LINE_BYTES = 1 << 20  # a longer line is skipped unread (a decoded text is a few hundred bytes)


def _warn_unusable(where: str, exc: OSError) -> None:
    reason = exc.strerror or type(exc).__name__
    if exc.filename and str(exc.filename) not in where:
        reason += f": {exc.filename}"
    # stacklevel 3: point at the pipeline code that used the cache, not at this helper
    warnings.warn(MixaugWarning(f"decode cache {where} unusable ({reason}); continuing without it"), stacklevel=3)


def _check(file: str, key: str, text: str) -> str:
    """A digest of the file's name (checkpoint, device, precision, calibration), key and text: catches lines
    damaged on disk, and binds a line to the file it was written to (a line copied from another
    checkpoint's or calibration's file is refused)."""
    h = hashlib.blake2b(file.encode("utf-8", "surrogatepass"), digest_size=8)
    h.update(b"\0" + key.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _line(file: str, key: str, text: str) -> bytes:
    record = [VERSION, key, text, _check(file, key, text)]
    try:
        return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it rather than write invalid UTF-8
        return (json.dumps(record) + "\n").encode("ascii")


def _parse(file: str, raw: bytes) -> tuple[str, str] | None:
    """(key, text) of one line, or None for anything not a whole, intact line of this version and file."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    if not (isinstance(record, list) and len(record) == 4 and record[0] == VERSION and type(record[0]) is int):
        return None
    _, key, text, check = record
    if not (isinstance(key, str) and isinstance(text, str) and isinstance(check, str)):
        return None
    try:
        text.encode("utf-8")  # a lone surrogate is not text any encoder takes, checksum or not
    except UnicodeEncodeError:
        return None
    return (key, text) if check == _check(file, key, text) else None


def _lines(fh, limit: int) -> Iterator[bytes]:
    """The file's lines split on b"\n" only (texts may hold U+2028 or U+0085), each at most `limit` bytes: a
    longer one is skipped, read in pieces of that size."""
    while line := fh.readline(limit + 1):
        if len(line) > limit:
            while line and not line.endswith(b"\n"):
                line = fh.readline(limit + 1)
            continue
        yield line


class DecodeCache:
    """Decoded texts by (mixed target, seed, decode options), appended to a JSONL file per checkpoint and
    device after every batch. A row always decodes the same, so a re-run (after Ctrl-C, or a label-policy
    variant in `eval`) reuses what was already decoded instead of losing it."""

    def __init__(self, path: Path | None):
        self.path = path
        self.texts: dict[str, str] = {}
        if path is None:
            return
        why = why_untrusted(path, max_bytes=MAX_BYTES)
        if why == MISSING:
            return  # a new file (the folders on the way, where there, passed the trust rule)
        if why is not None and why.startswith("it is larger than"):  # and trusted: size is checked last
            self._start_afresh(why)
            return
        with open_trusted(path, MAX_BYTES, "decode cache") as fh:
            if fh is None:  # refused: neither read nor written to
                self.path = None
                return
            for raw in _lines(fh, MAX_LINE_BYTES):
                entry = _parse(path.name, raw) if raw.strip() else None
                if entry is not None:
                    self.texts[entry[0]] = entry[1]

    def _start_afresh(self, why: str) -> None:
        """A file past MAX_BYTES: replaced by an empty one (one warning), so the cache stays bounded."""
        why = why.removeprefix("it ")
        warnings.warn(MixaugWarning(f"decode cache {self.path} {why}: not read, started afresh"), stacklevel=3)
        try:
            write_named(self.path, b"", mode=0o600)
        except Exception as exc:  # write_named's MixaugError names the path
            self.path = None
            warnings.warn(MixaugWarning(f"decode cache: {exc}; continuing without it"), stacklevel=3)

    @staticmethod
    def key(target: np.ndarray, seed: int, options: DecodeOptions, search: str = "", anchors: tuple = ()) -> str:
        """search: a decoding strategy beyond plain decoding with these options (e.g. "guided:4"); anchors:
        the row's anchoring words and bonuses (anchor.py), part of what it decodes to."""
        h = hashlib.sha256(np.ascontiguousarray(target, dtype=np.float32).tobytes())
        h.update(repr((seed, astuple(options)) + ((search,) if search else ())).encode())
        if anchors:
            h.update(b"\0anchors" + repr(tuple(anchors)).encode("utf-8", "surrogatepass"))
        return h.hexdigest()[:32]

    def __contains__(self, key: str) -> bool:
        return key in self.texts

    def __getitem__(self, key: str) -> str:
        return self.texts[key]

    def add(self, keys: Sequence[str], texts: Sequence[str]) -> None:
        pairs = list(zip(keys, texts))
        self.texts.update(pairs)
        if self.path is None or not pairs:
            return
        data = b"".join(_line(self.path.name, k, t) for k, t in pairs if isinstance(k, str) and isinstance(t, str))
        try:
            make_folder(self.path.parent)
            append_named(
                self.path, data, mode=0o600
            )  # the whole batch at once: a failed write spoils only its own line
        except OSError as exc:
            self._give_up(exc)

    def clear(self) -> None:
        self.texts.clear()
        if self.path is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError as exc:
                self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        """Go memory-only for the rest of the process, with one warning saying why."""
        path, self.path = self.path, None
        _warn_unusable(str(path), exc)


def decode_cache_path(checkpoint: Path, device: str, precision: str = "fp32", calibration: str = "") -> Path | None:
    """One file per (checkpoint contents, device, precision, and for int8 its scheme and `calibration`, the
    digest of the calibration in use: rows decoded under another are never reused); None (memory only) when
    MIXAUG_NO_DECODE_CACHE is set or the checkpoint's files cannot be read to name it."""
    from ..cache import cache_dir

    if os.environ.get("MIXAUG_NO_DECODE_CACHE"):
        return None
    from .checkpoint import checkpoint_digest
    from .quantize import SCHEME

    try:
        digest = checkpoint_digest(checkpoint)
    except OSError as exc:
        _warn_unusable(f"for {checkpoint}", exc)
        return None

    # int8 rows change with its scheme and its calibration
    where = device if precision == "fp32" else f"{device}-{precision}-q{SCHEME}-c{calibration[:16]}"
    try:
        folder = named_folder(cache_dir(), "decodes")
    except OSError as exc:
        _warn_unusable(f"folder {cache_dir() / 'decodes'}", exc)
        return None
    return folder / f"{digest}-{where}-v{VERSION}.jsonl"
