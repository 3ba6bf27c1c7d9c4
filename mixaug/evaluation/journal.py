"""The run journal of `mixaug eval`: each finished run is appended as it ends, keyed by what it depends
on, so an interrupted eval resumes where it stopped."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from ..errors import MixaugError
from .config import EvalConfig

JOURNAL = "runs.partial.jsonl"


@contextmanager
def _fresh_decodes(stack):
    """Speed is part of the report: decode afresh (in memory only), never from an earlier run's cache; within
    the run, mixaug:parent/soft reuse the decodes of the same plan under the hard policy. The stack is shared
    with the process's other calls (a notebook's `augment`), so its own cache comes back afterwards."""
    from ..inversion.decode_cache import DecodeCache

    saved, stack.decoded = stack.decoded, DecodeCache(None)
    try:
        yield
    finally:
        stack.decoded = saved


def _journal_key(cfg: EvalConfig) -> str:
    """What a finished run depends on: the settings (not where the report goes or the batch size, which never
    changes a result), TRAIN's and TEST's bytes, and mixaug's version."""
    import hashlib

    from .. import __version__

    h = hashlib.sha256()
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("out", "decode_batch")}
    h.update(json.dumps([settings, __version__], sort_keys=True, default=str).encode())
    for path in (cfg.train, cfg.test):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


class RunJournal:
    """Each finished (shots, seed, method) run of `mixaug eval`, appended as one JSON line the moment it is
    done, so an interrupted eval loses at most the run in progress and the same command resumes it. A journal
    written under other settings or data is started afresh; a torn last line is ignored."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key
        self.done: dict[str, dict] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and entry.get("key") == key and "run" in entry:
                    self.done[json.dumps(entry["run"])] = entry["result"]

    def get(self, run: list) -> dict | None:
        """The result kept for this run, if a run of the same command finished it."""
        return self.done.get(json.dumps(run))

    def add(self, run: list, result: dict) -> None:
        from ..data.write import append_named

        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": self.key, "run": run, "result": result}, default=str) + "\n"
        try:
            if not self.done and self.path.exists():  # another command's journal: start afresh
                self.path.unlink()
            append_named(self.path, line.encode())
        except OSError as exc:
            raise MixaugError(f"cannot write the run journal {self.path}: {exc.strerror or exc}") from None
        self.done[json.dumps(run)] = result

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
