"""The decode cache: decoded texts kept on disk so a re-run reuses them.

It is only an optimisation, so it must never fail a run: a damaged line is skipped, and a cache that
cannot be read or written (permissions, read-only or full disk, a file where a folder should be) turns
memory-only for the rest of the process after one MixaugWarning.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import MixaugWarning
from .io import append_named, named_folder

if TYPE_CHECKING:
    from .invert import DecodeOptions

VERSION = 2  # in every line and in the file name, so files of an older layout are never read


def _warn_unusable(where: str, exc: OSError) -> None:
    reason = exc.strerror or type(exc).__name__
    if exc.filename and str(exc.filename) not in where:
        reason += f": {exc.filename}"
    # stacklevel 3: point at the pipeline code that used the cache, not at this helper
    warnings.warn(MixaugWarning(f"decode cache {where} unusable ({reason}); continuing without it"), stacklevel=3)


def _check(key: str, text: str) -> str:
    """CRC-32 of key and text: catches lines that parse as JSON but were damaged on disk."""
    data = key.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8", "surrogatepass")
    return f"{zlib.crc32(data):08x}"


def _line(key: str, text: str) -> bytes:
    record = [VERSION, key, text, _check(key, text)]
    try:
        return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it rather than write invalid UTF-8
        return (json.dumps(record) + "\n").encode("ascii")


def _parse(raw: bytes) -> tuple[str, str] | None:
    """(key, text) of one line, or None for anything not a whole, intact line of this version."""
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
    return (key, text) if check == _check(key, text) else None


class DecodeCache:
    """Decoded texts by (mixed target, seed, decode options), appended to a JSONL file per checkpoint and
    device after every batch. A row always decodes the same, so a re-run (after Ctrl-C, or a label-policy
    variant in `eval`) reuses what was already decoded instead of losing it."""

    def __init__(self, path: Path | None):
        self.path = path
        self.texts: dict[str, str] = {}
        if path is None:
            return
        try:
            if path.exists() and not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the run forever
                raise OSError(errno.EINVAL, "not a regular file")
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._give_up(exc)
            return
        # split on b"\n" only: texts may hold U+2028 or U+0085, which str.splitlines would break on
        for raw in data.split(b"\n"):
            entry = _parse(raw) if raw.strip() else None
            if entry is not None:
                self.texts[entry[0]] = entry[1]

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
        data = b"".join(_line(k, t) for k, t in pairs if isinstance(k, str) and isinstance(t, str))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            append_named(self.path, data)  # the whole batch at once: a failed write spoils only its own line
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


def decode_cache_path(checkpoint: Path, device: str, precision: str = "fp32") -> Path | None:
    """One file per (checkpoint contents, device, precision, and for int8 its scheme); None (memory only) when MIXAUG_NO_DECODE_CACHE is set or
    the checkpoint's files cannot be read to name it."""
    from .models import cache_dir

    if os.environ.get("MIXAUG_NO_DECODE_CACHE"):
        return None
    from .checkpoint import checkpoint_digest
    from .quantize import SCHEME

    try:
        digest = checkpoint_digest(checkpoint)
    except OSError as exc:
        _warn_unusable(f"for {checkpoint}", exc)
        return None

    where = device if precision == "fp32" else f"{device}-{precision}-q{SCHEME}"  # int8 rows change with its scheme
    try:
        folder = named_folder(cache_dir(), "decodes")
    except OSError as exc:
        _warn_unusable(f"folder {cache_dir() / 'decodes'}", exc)
        return None
    return folder / f"{digest}-{where}-v{VERSION}.jsonl"
