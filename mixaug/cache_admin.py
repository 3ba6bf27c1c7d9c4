"""`mixaug cache`: what $MIXAUG_CACHE holds, by kind, and removing it (as `huggingface-cli scan-cache` and
`delete-cache` do for the Hub's cache). Everything there can be rebuilt: removing an entry costs the next run
the time to make it again, never a result.

An entry is one child of a kind's folder (a file, or a folder such as an adapted checkpoint); its age is the
time it was last written. A link is removed as a link, never followed to what it points at (the kind's own
folder may be a link the user made: its entries are listed, never removed, as that folder may hold more than
mixaug put there). Hidden names are left
alone, but for what a killed run left of an entry it was building (`.<entry>.<random>.building`, see
`cache.build_entry`): `prune` and `clear` remove that too, and only while nobody holds the entry's lock, so
they never pull a half-built entry from under a live run.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import MixaugError

KINDS = {  # folder -> what it holds
    "decodes": "decoded texts, one file per checkpoint and precision",
    "int8": "int8 calibrations, one per checkpoint and device",
    "embeddings": "encoded training texts (mixaug train / adapt)",
    "adapted": "checkpoints adapted by --adapt / --adapt-on / --task-model",
    "task": "task models of --task-model finetune",
    "lm": "the language model converted from its GGUF file",
}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
LEFTOVER = re.compile(r"\.(?P<entry>.+)\.[A-Za-z0-9_]+\.(building|stale)")  # cache.build_entry's temp folders


@dataclass
class Entry:
    kind: str
    path: Path
    bytes: int
    written: float  # seconds since the epoch
    building: str | None = None  # a build's leftover: the name of the entry it was for


def age_seconds(text: str) -> float:
    """'30d', '12h', '45m', '2w', '90s' -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(text))
    if not m:
        raise MixaugError(f"--older-than takes a number and a unit (s, m, h, d or w), e.g. 30d (got {text!r})")
    return float(m.group(1)) * UNITS[m.group(2)]


def check_kinds(kinds) -> list[str]:
    kinds = list(kinds or KINDS)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise MixaugError(f"--kind must be one of {', '.join(KINDS)} (got {unknown[0]!r})")
    return kinds


def entries(root: Path, kinds=None, leftovers: bool = False) -> list[Entry]:
    """Every entry of the given kinds (all by default) under `root`, kind by kind, oldest first; with
    `leftovers`, the temp folders of builds too."""
    found = []
    for kind in check_kinds(kinds):
        folder = root / kind
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            building = LEFTOVER.fullmatch(child.name)
            if child.name.startswith(".") and not (leftovers and building):
                continue
            info = child.lstat()
            found.append(Entry(kind, child, _size(child, info), info.st_mtime, building and building["entry"]))
    return sorted(found, key=lambda e: (list(KINDS).index(e.kind), e.written, e.path.name))


def _size(path: Path, info: os.stat_result) -> int:
    """Bytes on disk under `path`, links not followed."""
    if not stat.S_ISDIR(info.st_mode):
        return info.st_size
    total = 0
    for folder, _, files in os.walk(path):  # os.walk does not descend into links to folders
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def summary(root: Path) -> dict:
    """Per kind: what it holds, its entries and bytes, and when its oldest and newest entry was written."""
    out = {"cache_dir": str(root), "kinds": []}
    found = entries(root)
    for kind, holds in KINDS.items():
        mine = [e for e in found if e.kind == kind]
        out["kinds"].append(
            {
                "kind": kind,
                "holds": holds,
                "entries": len(mine),
                "bytes": sum(e.bytes for e in mine),
                "oldest": _iso(min((e.written for e in mine), default=None)),
                "newest": _iso(max((e.written for e in mine), default=None)),
            }
        )
    out["bytes"] = sum(k["bytes"] for k in out["kinds"])
    return out


def remove(root: Path, kinds=None, older_than: float | None = None, dry_run: bool = False) -> list[Entry]:
    """Remove (or with dry_run only list) the entries of `kinds` last written more than `older_than` seconds
    ago (every one without it). Returns what was (or would be) removed."""
    from .cache import entry_lock

    now = time.time()
    chosen = []
    for e in entries(root, kinds, leftovers=True):
        if older_than is not None and now - e.written <= older_than:
            continue
        if e.path.parent.is_symlink():
            continue  # a kind's folder you linked elsewhere (lm/ on a bigger disk) may hold more than mixaug's
        if e.building is None or dry_run:  # a dry run takes no lock (and writes nothing)
            chosen.append(e)
            if not dry_run:
                _delete(e.path)
            continue
        with entry_lock(e.path.parent / e.building, wait=0) as free:  # a build in progress holds it
            if free:
                chosen.append(e)
                if not dry_run:
                    _delete(e.path)
    return chosen


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _iso(when: float | None) -> str | None:
    return None if when is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def human(n: float) -> str:
    """Bytes as a person reads them: 512 B, 1.2 KB, 83.0 MB, 1.6 GB."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"
