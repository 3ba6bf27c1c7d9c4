"""int8's calibration, measured once per checkpoint and machine and kept on disk (a warm start).

Building the int8 LM needs each projection's largest |input| per channel, measured by an fp32 pass over
`quantize.CALIBRATION_TEXTS` (decode.calibrate): about 5 s on 2 cores, where quantising the weights from it
takes 0.5 s. The measurement depends only on the checkpoint (adaptor, LoRA, the LM its manifest names), the
scheme, and the machine's fp32 arithmetic, so it is kept in the cache folder as one safetensors file named by
all of them, and a later run reads it (milliseconds) instead of measuring again. A cached file holds the very
float32 values the pass gave, so int8's rows are the same bytes warm or cold (tested).

Like the decode cache it is only an optimisation and never fails a run: a file that is missing, too large,
refused by the cache's trust rule (cache.py), not safetensors, not made from this very checkpoint, scheme,
device and torch build (its metadata, checked on read), or not exactly the tensors this LM's layers need
(names, shapes, dtype, finite, >= 0) is measured again and replaced; a folder that cannot be written is
skipped after one warning. The decode cache's int8 files are named by the digest of the calibration in use
(`digest`), so rows decoded under another calibration are never reused.
"""

from __future__ import annotations

import hashlib
import json
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import MixaugWarning
from .quantize import PROJECTIONS, SCHEME

MAX_BYTES = 16 << 20  # the default LM's file is ~0.5 MB: 30 layers x 4 projections x <= 1,536 float32 channels
KIND = "mixaug int8 calibration"


@dataclass(frozen=True)
class CalibrationFile:
    """Where a measurement is kept, and what it is measured from (written as the file's metadata)."""

    path: Path
    source: dict[str, str]


def calibration_file(checkpoint: Path, device: str) -> CalibrationFile | None:
    """The file for this checkpoint, device, scheme, torch build and CPU architecture (None when the
    checkpoint's files cannot be read to name it, or the cache folder is a link)."""
    from ..cache import cache_dir
    from ..data.write import named_folder
    from .checkpoint import checkpoint_digest

    try:
        digest = checkpoint_digest(checkpoint)
        folder = named_folder(cache_dir(), "int8")
    except OSError:
        return None
    build = f"{torch.__version__}-{platform.machine()}".replace("+", "_").replace("/", "_")
    source = {"kind": KIND, "checkpoint": digest, "device": device, "scheme": str(SCHEME), "torch": build}
    return CalibrationFile(folder / f"{digest}-{device}-q{SCHEME}-torch{build}.safetensors", source)


def expected_widths(lm) -> dict[tuple[int, str], int]:
    """Each projection's input width, as decode.calibrate names them: (layer, kind) -> channels."""
    from .decode import projection_groups

    return {
        (i, kind): group[0].in_features
        for i, layer in enumerate(lm.model.layers)
        for kind, group in zip(PROJECTIONS, projection_groups(layer))
    }


def _metadata(data: bytes) -> dict | None:
    """A safetensors file's __metadata__ (its header is an 8-byte length, then JSON), or None."""
    size = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if not 0 < size <= len(data) - 8:
        return None
    try:
        header = json.loads(data[8 : 8 + size])
    except (ValueError, RecursionError):
        return None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else None


def load(file: CalibrationFile | None, lm) -> dict[tuple[int, str], torch.Tensor] | None:
    """The cached measurement for `lm`, or None for anything but a trusted, intact file made from this
    file's source, of exactly its tensors."""
    from ..cache import read_trusted

    if file is None:
        return None
    data = read_trusted(file.path, MAX_BYTES, "int8 calibration cache")
    if data is None or _metadata(data) != file.source:
        return None
    try:
        from safetensors.torch import load as from_bytes

        tensors = from_bytes(data)
    except Exception:  # a damaged or foreign file is a cache miss: safetensors raises its own errors
        return None
    widths = expected_widths(lm)
    if set(tensors) != {f"{i}.{kind}" for i, kind in widths}:
        return None
    found = {}
    for (i, kind), n in widths.items():
        t = tensors[f"{i}.{kind}"]
        if t.dtype != torch.float32 or t.shape != (n,) or not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
            return None
        found[(i, kind)] = t
    return found


def digest(act_max: dict[tuple[int, str], torch.Tensor]) -> str:
    """The identity of a calibration: a hash of its tensors (names and float32 bytes)."""
    h = hashlib.sha256()
    for (i, kind), t in sorted(act_max.items()):
        h.update(f"{i}.{kind}\0".encode())
        h.update(t.detach().float().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def save(file: CalibrationFile | None, act_max: dict[tuple[int, str], torch.Tensor]) -> None:
    """Keep a measurement with its source as metadata (atomically, 0600: a reader sees the old file or the
    new, never half); a folder that cannot be written costs one warning and the next run measures again."""
    if file is None:
        return
    from safetensors.torch import save

    from ..cache import make_folder
    from ..data.write import write_named

    data = save({f"{i}.{kind}": t.float().contiguous() for (i, kind), t in act_max.items()}, metadata=file.source)
    try:
        make_folder(file.path.parent)
        write_named(file.path, data, mode=0o600)
    except Exception as exc:  # OSError, or write_named's MixaugError naming the path
        warnings.warn(
            MixaugWarning(f"int8 calibration cache {file.path} not written ({exc}); continuing"), stacklevel=3
        )
