"""The loaded stack: the models a run decodes with, loaded once per (checkpoint, device, precision) and kept
for the process; the checkpoint's folder; and which checkpoint a run uses (adapted on its texts for --adapt or
--adapt-on, refined for --task-model finetune), with the decoder of its engine."""

from __future__ import annotations

import os
from pathlib import Path

from .config import ADAPT_ON_SEED, AugmentConfig
from .errors import MixaugError
from .inputs import Prepared, pool_texts
from .inversion.candidates import Stack
from .inversion.checkpoint import DEFAULT_CHECKPOINT
from .inversion.decode_cache import DecodeCache
from .inversion.decode_cache import decode_cache_path as _decode_cache_path

_STACKS: dict[tuple[str, str, str], Stack] = {}


def checkpoint_path(checkpoint: str | Path | None) -> Path:
    """The checkpoint folder: the given one (or its checkpoint/ subfolder for a training run), else
    $MIXAUG_CHECKPOINT, else the one shipped in the package."""
    path = Path(checkpoint or os.environ.get("MIXAUG_CHECKPOINT") or DEFAULT_CHECKPOINT)
    if not (path / "manifest.json").exists() and (path / "checkpoint" / "manifest.json").exists():
        path = path / "checkpoint"
    return path


def checked_checkpoint(checkpoint: str | Path | None = None) -> Path:
    """A checkpoint's folder (`checkpoint_path`), checked by `inversion.checkpoint.validate_checkpoint`
    (manifest, weight headers) without loading a model: a bad one fails in a second, before the input is
    encoded. Returns the folder."""
    from .inversion.checkpoint import validate_checkpoint as check

    path = checkpoint_path(checkpoint)
    check(path)
    return path


def load_stack(checkpoint: str | Path | None = None, device: str = "auto", precision: str = "fp32") -> Stack:
    """Load (once per process) the encoder and inverter named by a checkpoint's manifest; `precision` is
    the LM's while decoding (fp32, or int8 on CPU)."""
    from .encode import load_encoder
    from .inversion.invert import load_inverter, resolve_precision
    from .inversion.models import resolve_device

    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    path = checkpoint_path(checkpoint)
    key = (str(path.resolve()), dev, precision)
    if key not in _STACKS:
        from .inversion import checkpoint as ckpt

        manifest = ckpt.validate_checkpoint(path)  # before the encoder: a hostile checkpoint costs no model load
        encoder = load_encoder(manifest.encoder, dev, manifest.normalize, base=path)
        if encoder.dim != manifest.encoder_dim:
            raise MixaugError(
                f"encoder {manifest.encoder} gives {encoder.dim}-d embeddings; checkpoint {path} expects "
                f"{manifest.encoder_dim}"
            )
        inverter = load_inverter(path, dev, precision=precision, encoder=lambda: encoder)
        # int8: the decode cache's file is named by the calibration in use, so it is read (or measured) now
        cache_file = _decode_cache_path(path, dev, precision, inverter.calibration_id())
        _STACKS[key] = Stack(encoder, inverter, path, dev, DecodeCache(cache_file))
    return _STACKS[key]


def load_for(p: Prepared, cfg: AugmentConfig):
    """The run's models: (stack, decoder, task). The checkpoint is first refined on the rows' texts for
    --adapt, on the --adapt-on file's texts and then the rows' for --adapt-on (seed ADAPT_ON_SEED), or for
    --task-model finetune on the embeddings of a task model fitted to the labelled rows (all cached).
    decoder is None for the local engine, else a RayDecoder whose actors are loaded; task is None, or the
    task model's head, which then labels the new rows."""
    checkpoint, task = checkpoint_for(p, cfg)
    stack = load_stack(checkpoint, cfg.device, cfg.precision)
    return stack, _remote_decoder(stack, cfg), task


def checkpoint_for(p: Prepared, cfg: AugmentConfig):
    """(the checkpoint the run decodes with, the task model's head or None): see `load_for`. The dry run
    calls it too, so it checks --adapt-on's file and shows samples of the checkpoint the run would use
    (adapting costs a real run nothing more: the adapted checkpoint is cached)."""
    checkpoint, task, encoder = cfg.checkpoint, None, None
    texts, seed = list(p.texts), cfg.seed
    if cfg.adapt_on is not None:  # read first: a bad file fails before any model loads
        texts, seed = pool_texts(cfg) + texts, ADAPT_ON_SEED
    if cfg.task_model == "finetune":
        task, encoder = _task_model(p, cfg)
    if cfg.adapt or cfg.adapt_on is not None or task is not None:
        from .training.train import adapt

        checkpoint = adapt(
            texts,
            checkpoint_path(cfg.checkpoint),
            cfg.adapt_steps,
            cfg.adapt_minutes,
            seed,
            cfg.device,
            progress=False,
            encoder=encoder,
        )
    return checkpoint, task


def _task_model(p: Prepared, cfg: AugmentConfig):
    """(head, encoder folder) of the task model fitted to the labelled rows (cached)."""
    from .encode import load_encoder
    from .inversion import checkpoint as ckpt
    from .inversion.models import resolve_device
    from .training.task import fit_cached, load_labeller

    if p.labels is None:
        raise MixaugError("--task-model finetune needs labelled rows (name the label column with --label-column)")
    base = checkpoint_path(cfg.checkpoint)
    manifest = ckpt.validate_checkpoint(base)
    encoder = load_encoder(manifest.encoder, resolve_device(cfg.device), manifest.normalize, base=base)
    folder = fit_cached(encoder, p.texts, p.labels, cfg.seed, cfg.task_steps)
    return load_labeller(folder, list(dict.fromkeys(p.labels))), str(folder / "encoder")


def _remote_decoder(stack: Stack, cfg: AugmentConfig):
    """None for the local engine; a RayDecoder (its actors loaded) for --engine ray."""
    if cfg.engine == "local":
        return None
    from .engines.ray import RayDecoder

    return RayDecoder(stack.checkpoint, stack.device, stack.inverter.precision, cfg.num_workers)


def forget_stack(checkpoint: str | Path) -> None:
    """Drop the loaded stacks of a checkpoint (e.g. one adapted to a single subset) so their memory is freed."""
    path = str(checkpoint_path(checkpoint).resolve())
    for key in [k for k in _STACKS if k[0] == path]:
        del _STACKS[key]
