"""int8's calibration, measured once per checkpoint and machine and kept on disk (a warm start).

Building the int8 LM needs each projection's largest |input| per channel, measured by an fp32 pass over
`quantize.CALIBRATION_TEXTS` (decode.calibrate): about 5 s on 2 cores, where quantising the weights from it
takes 0.5 s. The measurement depends only on the checkpoint (adaptor, LoRA, the LM its manifest names), the
scheme, and the machine's fp32 arithmetic, so it is kept in the cache folder as one safetensors file named by
all of them, and a later run reads it (milliseconds) instead of measuring again. A cached file holds the very
float32 values the pass gave, so int8's rows are the same bytes warm or cold (tested).

Like the decode cache it is only an optimisation and never fails a run: a file that is missing, too large,
not safetensors, or not exactly the tensors this LM's layers need (names, shapes, dtype, finite, >= 0) is
measured again and replaced; a folder that cannot be written is skipped after one warning.
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path

import torch

from .errors import MixaugWarning
from .quantize import PROJECTIONS, SCHEME

MAX_BYTES = 16 << 20  # the default LM's file is ~0.5 MB: 30 layers x 4 projections x <= 1,536 float32 channels


def calibration_path(checkpoint: Path, device: str) -> Path | None:
    """The file for this checkpoint, device, scheme, torch build and CPU architecture (None when the
    checkpoint's files cannot be read to name it, or the cache folder is a link)."""
    from .checkpoint import checkpoint_digest
    from .io import named_folder
    from .models import cache_dir

    try:
        digest = checkpoint_digest(checkpoint)
        folder = named_folder(cache_dir(), "int8")
    except OSError:
        return None
    build = f"{torch.__version__}-{platform.machine()}".replace("+", "_").replace("/", "_")
    return folder / f"{digest}-{device}-q{SCHEME}-torch{build}.safetensors"


def expected_widths(lm) -> dict[tuple[int, str], int]:
    """Each projection's input width, as decode.calibrate names them: (layer, kind) -> channels."""
    from .decode import projection_groups

    return {
        (i, kind): group[0].in_features
        for i, layer in enumerate(lm.model.layers)
        for kind, group in zip(PROJECTIONS, projection_groups(layer))
    }


def load(path: Path | None, lm) -> dict[tuple[int, str], torch.Tensor] | None:
    """The cached measurement for `lm`, or None for anything but an intact file of exactly its tensors."""
    if path is None:
        return None
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_BYTES:
            return None
        from safetensors.torch import load_file

        tensors = load_file(str(path))
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


def save(path: Path | None, act_max: dict[tuple[int, str], torch.Tensor]) -> None:
    """Keep a measurement (atomically: a reader sees the old file or the new, never half); a folder that
    cannot be written costs one warning and the next run measures again."""
    if path is None:
        return
    from safetensors.torch import save

    from .io import write_named

    data = save({f"{i}.{kind}": t.float().contiguous() for (i, kind), t in act_max.items()})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_named(path, data)
    except Exception as exc:  # OSError, or write_named's MixaugError naming the path
        warnings.warn(MixaugWarning(f"int8 calibration cache {path} not written ({exc}); continuing"), stacklevel=3)
