"""`mixaug info`, `train`, `adapt` and `export`: checkpoints described, trained, adapted and exported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..config import TrainConfig
from ..errors import MixaugError
from ..terminal import err, show_progress
from .shared import AUG, CHECKPOINT, DEVICE, IN_FMT, TRAIN, cli_errors, config_from


@cli_errors
def info(checkpoint: Optional[str] = CHECKPOINT, device: str = DEVICE):
    """Print the checkpoint manifest, resolved model locations, device and versions (JSON)."""
    from ..inversion.checkpoint import describe
    from ..stacks import checkpoint_path

    print(json.dumps(describe(checkpoint_path(checkpoint), device), indent=2, ensure_ascii=False))


@cli_errors
def train(
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoint/, state, train_log.jsonl)."),
    corpus: Optional[list[str]] = typer.Option(
        None, "--corpus", help="Text file(s), one sentence per line, or datasets."
    ),
    text_column: Optional[str] = typer.Option(TRAIN.text_column),
    split_sentences: bool = typer.Option(TRAIN.split_sentences, "--split-sentences"),
    min_words: int = typer.Option(TRAIN.min_words),
    max_words: int = typer.Option(TRAIN.max_words),
    max_sentences: Optional[int] = typer.Option(TRAIN.max_sentences),
    lm: Optional[str] = typer.Option(
        TRAIN.lm, help="LM spec: hub id, folder or .gguf (default SmolLM2-135M-Instruct)."
    ),
    encoder: Optional[str] = typer.Option(TRAIN.encoder),
    num_soft_tokens: int = typer.Option(TRAIN.num_soft_tokens),
    hidden_dim: int = typer.Option(TRAIN.hidden_dim),
    lora_r: int = typer.Option(TRAIN.lora_r, help="LoRA rank on q,k,v,o (0 = adaptor only)."),
    lr: Optional[float] = typer.Option(
        None, help=f"Peak learning rate (default: {TRAIN.lr:g}; on --resume: the run's own)."
    ),
    train_batch: int = typer.Option(
        TRAIN.train_batch, "--batch-size", help="The optimizer's batch (sentences per step)."
    ),
    max_steps: Optional[int] = typer.Option(TRAIN.max_steps),
    max_minutes: Optional[float] = typer.Option(TRAIN.max_minutes),
    eval_every: Optional[int] = typer.Option(
        None, help=f"Steps between held-out evaluations (default: {TRAIN.eval_every})."
    ),
    eval_size: int = typer.Option(TRAIN.eval_size),
    save_every: Optional[int] = typer.Option(
        None, help=f"Steps between saved checkpoints (default: {TRAIN.save_every})."
    ),
    noise_std: Optional[float] = typer.Option(
        None, help=f"Stage 3: Gaussian noise on input embeddings (default: {TRAIN.noise_std:g})."
    ),
    mix_prob: Optional[float] = typer.Option(
        None,
        help=f"Stage 3: share of inputs replaced by mixtures (target: dominant parent) (default: {TRAIN.mix_prob:g}).",
    ),
    decay_from: Optional[int] = typer.Option(
        TRAIN.decay_from, help="From this step the lr falls linearly to 0 at --max-steps (default: constant lr)."
    ),
    seed: int = typer.Option(TRAIN.seed),
    device: str = DEVICE,
    resume: bool = typer.Option(TRAIN.resume, "--resume"),
    quiet: bool = typer.Option(False, "-q", "--quiet"),
):
    """Train (or --resume) an inversion checkpoint on unlabelled sentences (stage 1 alignment)."""
    options = dict(locals())
    from ..data.write import check_out_folder
    from ..training.train import saved_config
    from ..training.train import train as run_train

    check_out_folder(out)
    # Settings a resumed run may change: left out (None), they keep the run's own values, not the defaults.
    base = saved_config(out) if resume else TRAIN
    kept = {k: getattr(base, k) for k in ("lr", "eval_every", "save_every", "noise_std", "mix_prob", "decay_from")}
    given = {k: v for k, v in options.items() if not (k in kept and v is None)}
    cfg = config_from(
        TrainConfig,
        given,
        **{k: v for k, v in kept.items() if options[k] is None},
        out=str(out),
        corpus=list(corpus or []),
    )
    path = run_train(cfg, progress=not quiet and err.is_terminal, log=lambda m: err.print(m, highlight=False))
    print(str(path))


@cli_errors
def adapt_cmd(
    input: str = typer.Argument(..., help="Dataset whose texts to adapt to (or '-')."),
    input_format: Optional[str] = IN_FMT,
    text_column: Optional[str] = typer.Option(None),
    adapt_steps: int = typer.Option(AUG.adapt_steps),
    adapt_minutes: Optional[float] = typer.Option(AUG.adapt_minutes),
    seed: int = typer.Option(AUG.seed),
    checkpoint: Optional[str] = CHECKPOINT,
    device: str = DEVICE,
    quiet: bool = typer.Option(False, "-q", "--quiet"),
):
    """Stage 2: refine a checkpoint on a dataset's own texts; prints the (cached) adapted checkpoint path."""
    from ..files import adapt_file

    say = (lambda m: None) if quiet else (lambda m: err.print(m, highlight=False))
    options = dict(input=input, input_format=input_format, text_column=text_column, checkpoint=checkpoint)
    settings = dict(steps=adapt_steps, minutes=adapt_minutes, seed=seed, device=device, progress=show_progress(quiet))
    print(str(adapt_file(**options, **settings, log=say)))


@cli_errors
def export(
    source: Path = typer.Argument(..., help="A checkpoint folder or a training run folder."),
    dest: Path = typer.Argument(..., help="Where to write the exported checkpoint."),
    fp16: bool = typer.Option(True, "--fp16/--fp32", help="Store weights as float16 (half the size)."),
    overwrite: bool = typer.Option(False, "--overwrite"),
):
    """Copy a checkpoint (manifest, adaptor, LoRA) without training state, optionally in fp16."""
    import torch

    from ..inversion.checkpoint import export_checkpoint
    from ..stacks import checkpoint_path

    if dest.exists() and not overwrite:  # before the source is even resolved, as ever
        raise MixaugError(f"{dest} exists (pass --overwrite)")
    export_checkpoint(checkpoint_path(source), dest, torch.float16 if fp16 else torch.float32, overwrite)
    print(str(dest))
