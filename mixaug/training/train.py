"""Training the inversion checkpoint (stage 1 alignment, stage 2 in-domain refinement).

The encoder and the LM are frozen; the adaptor (and optional LoRA adapters on the LM) learn
-log P_LM(x | template(adaptor(encoder(x)))). A run folder holds:

    checkpoint/        the usable checkpoint (manifest.json, adaptor.safetensors, lora/)
    state.safetensors  trainable weights + optimizer moments, for --resume
    state.json         step, elapsed time, the config, the corpus fingerprint (what --resume checks), evals
    train_log.jsonl    one line per logged step / evaluation
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..config import MAX_STEPS, TrainConfig, new_names
from ..data.write import named_file, read_json_file, write_named
from ..errors import MixaugError
from ..inversion.checkpoint import Adaptor, Manifest, validate_checkpoint
from ..inversion.invert import Inverter, attach_lora
from .loop import Run, finish, load_state, run_steps, stderr_console, trainable_params

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
# What a resumed run may change; everything else (corpus, sizes, seed) is the saved run's own.
# Stage 3 is a later phase of the same run, hence noise_std and mix_prob.
RESUMABLE = (
    "max_steps",
    "max_minutes",
    "resume",
    "device",
    "lr",
    "eval_every",
    "save_every",
    "noise_std",
    "mix_prob",
    "decay_from",
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")


# -- corpus ------------------------------------------------------------------------------------------
def read_corpus(
    paths: Sequence[str],
    text_column: str | None = None,
    split_sentences: bool = False,
    min_words: int = 3,
    max_words: int = 40,
) -> list[str]:
    """Sentences from text files (one per line, gzipped or not) or datasets (--text-column), deduplicated,
    in order. Read line by line within the readers' bounds (a line, and MAX_CELLS sentences in all)."""
    from ..data.columns import resolve_text_column
    from ..data.read import MAX_CELLS, check_readable, read_dataset, text_lines

    seen: set[str] = set()
    out: list[str] = []
    for path in paths:
        p = Path(path)
        if p.suffix in (".txt",) or p.name.endswith(".txt.gz"):
            if not p.exists():
                raise MixaugError(f"corpus file not found: {path}")
            check_readable(p)
            lines = (piece for line in text_lines(p, p.name.endswith(".gz")) for piece in line.splitlines())
        else:
            df = read_dataset(p)
            col = resolve_text_column(df, text_column)
            lines = (str(t) for t in df[col].tolist() if isinstance(t, str))
        for line in lines:
            pieces = _SENTENCE_END.split(line) if split_sentences else [line]
            for s in pieces:
                s = " ".join(s.split())
                if min_words <= len(s.split()) <= max_words and s not in seen:
                    if len(out) >= MAX_CELLS:
                        raise MixaugError(f"corpus holds more than {MAX_CELLS:,} sentences; pass fewer files")
                    seen.add(s)
                    out.append(s)
    if not out:
        raise MixaugError(f"no sentences of {min_words}-{max_words} words in the corpus")
    return out


MAX_NPY_HEADER_BYTES = 4096  # np.save's header for a 2-d float array is 128 bytes


def _cached_array(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The cached embeddings at `path` when the trust rule allows the file (cache.py: a regular file of the
    user's alone, opened without following a link or waiting on a FIFO), its size fits `shape`, it loads
    without pickle and holds finite floats of exactly that shape; else None (a miss: encode again)."""
    from ..cache import read_trusted

    data = read_trusted(path, shape[0] * shape[1] * 8 + MAX_NPY_HEADER_BYTES, "embeddings cache")
    if data is None or len(data) < shape[0] * shape[1] * 4:
        return None
    try:
        emb = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:  # a truncated or foreign file: numpy raises ValueError, EOFError, OSError...
        return None
    if not (isinstance(emb, np.ndarray) and emb.shape == shape and emb.dtype.kind == "f"):
        return None
    return emb if bool(np.isfinite(emb).all()) else None


def cached_embeddings(
    encoder, texts: Sequence[str], batch_size: int = 64, on_batch: Callable[[int], None] | None = None
) -> np.ndarray:
    """Encode once per (encoder, texts); later runs and --resume read the .npy from the cache. Anything wrong
    with a cached file is a miss, and a cache that cannot be written costs one warning: never an error."""
    from ..cache import cache_dir, make_folder, warn_once

    h = hashlib.sha256(f"{encoder.name}|{encoder.normalize}\n".encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\n")
    path = cache_dir() / "embeddings" / f"{h.hexdigest()[:24]}.npy"
    emb = _cached_array(path, (len(texts), encoder.dim))
    if emb is not None:
        if on_batch:
            on_batch(len(texts))
        return emb
    emb = encoder.encode(texts, batch_size=batch_size, on_batch=on_batch)
    try:
        make_folder(path.parent)
        with named_file(path, mode=0o600) as fh:
            np.save(fh, emb)
    except OSError as exc:
        warn_once(f"{path} (write)", f"it cannot be written: {exc.strerror or exc}", "embeddings cache")
    return emb


# -- a run set up --------------------------------------------------------------------------------
def train(
    cfg: TrainConfig,
    texts: Sequence[str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Run (or resume) a training run; returns the checkpoint folder. Stops at max_steps/max_minutes."""
    from ..inversion.models import resolve_device

    say = log or (lambda m: print(m, file=sys.stderr))
    folder = Path(cfg.out)
    cfg, state = _run_config(cfg, folder)
    if texts is None and not cfg.corpus:
        raise MixaugError("pass --corpus FILE (or --resume an existing run)")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = resolve_device(cfg.device)
    init = validate_checkpoint(cfg.init_checkpoint) if cfg.init_checkpoint else None
    train_texts, eval_texts, corpus_sha256 = _corpus(cfg, texts, folder, state)
    encoder, manifest, adaptor, lm, inverter = _models(cfg, init, device)
    params = trainable_params(adaptor, lm)
    optimizer = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=0.0)
    train_emb, eval_emb = _encode_corpus(encoder, train_texts, eval_texts, progress)
    run = Run(
        cfg=cfg,
        folder=folder,
        stage="adapt" if init is not None else "align",
        device=device,
        manifest=manifest,
        adaptor=adaptor,
        lm=lm,
        inverter=inverter,
        encoder=encoder,
        params=params,
        optimizer=optimizer,
        train_texts=train_texts,
        eval_texts=eval_texts,
        train_emb=train_emb,
        eval_emb=eval_emb,
        corpus_sha256=corpus_sha256,
    )
    if cfg.resume:
        info = load_state(folder, params, optimizer, state)
        run.step, run.elapsed_before, run.history = info["step"], info["elapsed_s"], info.get("evals", [])
        say(f"resumed {folder} at step {run.step} ({run.elapsed_before / 60:.1f} min trained)")
    folder.mkdir(parents=True, exist_ok=True)
    run.start = time.time()
    if init is not None and run.step == 0 and not cfg.resume:
        baseline = run.evaluate()  # stage 2: the starting checkpoint's fidelity on this data's held-out rows
        run.log({"eval": baseline, "elapsed_s": round(run.elapsed(), 1), "before_adapt": True})
        say(f"before adapting: held-out cosine {baseline['cosine']:.3f} token-F1 {baseline['token_f1']:.3f}")
    run_steps(run, progress, say)
    return finish(run)


def _run_config(cfg: TrainConfig, folder: Path) -> tuple[TrainConfig, dict | None]:
    """The run's config, checked (resumed: the saved run's own, but for RESUMABLE), and state.json when
    resuming (read once: the config, the corpus fingerprint, the step)."""
    if folder.exists() and (folder / "state.json").exists() and not cfg.resume:
        raise MixaugError(f"{folder} already holds a training run: pass --resume to continue it, or another --out")
    cfg.validate()
    state = _state_info(folder) if cfg.resume else None
    if cfg.resume:
        saved = asdict(saved_config(folder, state))
        cfg = TrainConfig(**{**saved, **{k: getattr(cfg, k) for k in RESUMABLE}, "out": cfg.out})
        cfg.validate()
    return cfg, state


def _corpus(
    cfg: TrainConfig, texts: Sequence[str] | None, folder: Path, state: dict | None
) -> tuple[list[str], list[str], str]:
    """The sentences to train on and the held-out ones (a seeded shuffle, then the split), and the corpus
    fingerprint; a resumed run must read the very sentences it was trained on."""
    if texts is None:
        texts = read_corpus(cfg.corpus, cfg.text_column, cfg.split_sentences, cfg.min_words, cfg.max_words)
    texts = list(texts)
    corpus_sha256 = hashlib.sha256(json.dumps(texts).encode()).hexdigest()
    if cfg.resume and state.get("corpus_sha256") != corpus_sha256:
        # A run folder names its corpus files: resumed, it reads only the sentences it was trained on, never a
        # file a planted state.json points at (whose fingerprint it cannot know).
        raise MixaugError(
            f"cannot resume {folder}: its corpus files no longer hold the sentences it was trained on "
            "(or state.json records none): start a new run"
        )
    rng = random.Random(cfg.seed)
    rng.shuffle(texts)
    if cfg.max_sentences:
        texts = texts[: cfg.max_sentences]
    n_eval = min(cfg.eval_size, max(1, len(texts) // 10))
    eval_texts, train_texts = texts[:n_eval], texts[n_eval:]
    if not train_texts:
        raise MixaugError("corpus too small: nothing left to train on after the held-out split")
    return train_texts, eval_texts, corpus_sha256


def _models(cfg: TrainConfig, init: Manifest | None, device: str):
    """The frozen encoder and LM, the new manifest, the adaptor (and LoRA) to train, from an init checkpoint's
    weights in stage 2; (encoder, manifest, adaptor, lm, inverter)."""
    from ..encode import load_encoder
    from ..inversion.models import DEFAULT_LM, absolute_spec, lm_weights_hash, load_lm

    # --encoder/--lm are read against the CWD, an init checkpoint's own against its folder; the new manifest
    # records local paths as absolute ones, since its relative paths would be read against its own folder.
    encoder_spec = (
        absolute_spec(cfg.encoder)
        if cfg.encoder
        else (absolute_spec(init.encoder, cfg.init_checkpoint) if init else None)
    )
    lm_spec = absolute_spec(cfg.lm) if cfg.lm else (absolute_spec(init.lm, cfg.init_checkpoint) if init else None)
    encoder = load_encoder(encoder_spec, device)
    lm, tokenizer, lm_folder = load_lm(lm_spec, device)
    manifest = Manifest(
        encoder=encoder.name,
        encoder_dim=encoder.dim,
        normalize=True,
        lm=lm_spec or DEFAULT_LM,
        lm_weights_sha256=lm_weights_hash(lm_folder, lm),
        lm_hidden_size=lm.get_input_embeddings().weight.shape[1],
        num_soft_tokens=cfg.num_soft_tokens,
        hidden_dim=cfg.hidden_dim,
        lora={"r": cfg.lora_r, "alpha": cfg.lora_alpha, "target_modules": list(LORA_TARGETS)} if cfg.lora_r else None,
    )
    if init is not None:
        for key in ("num_soft_tokens", "hidden_dim", "lora", "prompt_template"):
            setattr(manifest, key, getattr(init, key))
    adaptor = Adaptor.from_manifest(manifest).to(device)
    if manifest.lora:
        lm = attach_lora(lm, manifest)
    if init is not None:
        _load_init(cfg.init_checkpoint, adaptor, lm)
    return encoder, manifest, adaptor, lm, Inverter(manifest, adaptor, lm, tokenizer, device)


def _encode_corpus(encoder, train_texts: list[str], eval_texts: list[str], progress: bool):
    """Both splits' embeddings (cached), under one progress bar."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=stderr_console(),
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task("encoding corpus", total=len(train_texts) + len(eval_texts))
        train_emb = cached_embeddings(encoder, train_texts, on_batch=lambda k: bar.advance(task, k))
        eval_emb = cached_embeddings(encoder, eval_texts, on_batch=lambda k: bar.advance(task, k))
    return train_emb, eval_emb


def saved_config(run: str | Path, info: dict | None = None) -> TrainConfig:
    """The config a run folder was last trained with (what --resume continues), checked by the same rules
    as a new run's. A run saved before the rename calls train_batch batch_size: read as train_batch."""
    config = (_state_info(run) if info is None else info)["config"]
    try:
        saved = TrainConfig(**new_names(TrainConfig, config, stacklevel=None))
        saved.validate()
    except MixaugError as exc:
        raise MixaugError(f"cannot resume {run}: state.json's config: {exc}") from None
    except TypeError as exc:
        raise MixaugError(f"cannot resume {run}: state.json is not a mixaug training state ({exc})") from None
    return saved


MAX_STATE_JSON_BYTES = 64 << 20
ADAPT_WAIT_S = 3600  # how long a run waits for another adapting the same texts before adapting them itself


def _state_info(run: Path) -> dict:
    """state.json, read within bounds and checked field by field: what a resumed run takes from it."""
    state = Path(run) / "state.json"
    if not state.is_file():
        raise MixaugError(f"nothing to resume in {run}: no state.json")
    bad = f"cannot resume {run}: state.json"
    info = read_json_file(state, bad, MAX_STATE_JSON_BYTES)
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise MixaugError(f"{bad} is not a mixaug training state (no config)")
    step, elapsed, evals = info.get("step", 0), info.get("elapsed_s", 0.0), info.get("evals", [])
    if not (isinstance(step, int) and not isinstance(step, bool) and 0 <= step <= MAX_STEPS):
        raise MixaugError(f"{bad}: step must be a whole number from 0 to {MAX_STEPS:,} (got {step!r})")
    if not (isinstance(elapsed, (int, float)) and not isinstance(elapsed, bool) and 0 <= elapsed < float("inf")):
        raise MixaugError(f"{bad}: elapsed_s must be a finite number of seconds (got {elapsed!r})")
    if not (isinstance(evals, list) and all(isinstance(e, dict) for e in evals)):
        raise MixaugError(f"{bad}: evals must be a list of records")
    return info


def adapt(
    texts: Sequence[str],
    checkpoint: str | Path,
    steps: int = 60,
    minutes: float | None = None,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 16,
    lr: float = 5e-4,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    encoder: str | None = None,
) -> Path:
    """Stage 2: continue alignment of `checkpoint` on a dataset's own texts for a bounded budget.

    The adapted checkpoint is cached by (checkpoint, texts, budget, seed, encoder), so a second run reuses
    it. `steps` is the deterministic budget; `minutes` only caps it (a capped run may stop earlier).
    `encoder`: align to this encoder instead of the checkpoint's (a task model's fine-tuned one), which the
    adapted checkpoint then names."""
    from ..cache import build_entry, cache_dir, trusted_tree
    from ..inversion.checkpoint import MANIFEST

    checkpoint = Path(checkpoint)
    texts = list(dict.fromkeys(texts))  # each text once: the key is the set in first-seen order, as trained
    h = hashlib.sha256((checkpoint / MANIFEST).read_bytes())
    h.update(json.dumps([steps, minutes, seed, batch_size, lr] + ([encoder] if encoder else [])).encode())
    for t in texts:
        h.update(t.encode() + b"\n")
    entry = cache_dir() / "adapted" / h.hexdigest()[:20]

    def ready(folder: Path) -> bool:
        return trusted_tree(folder, "adapted checkpoint") and all(
            (folder / name).is_file() for name in ("done", f"checkpoint/{MANIFEST}")
        )

    def build(run: Path) -> None:
        cfg = TrainConfig(
            out=str(run),
            init_checkpoint=str(checkpoint),
            encoder=encoder,
            max_steps=steps,
            max_minutes=minutes,
            seed=seed,
            device=device,
            train_batch=batch_size,
            lr=lr,
            warmup_steps=5,
            eval_every=10**9,
            save_every=max(10, steps // 4),
            eval_size=100,
            min_words=1,
            max_words=10_000,  # unused: the texts are given
        )
        train(cfg, texts=texts, progress=progress, log=log)
        # the manifest names the entry, not this temp folder: the same adaptation gives the same checkpoint bytes
        manifest = validate_checkpoint(run / "checkpoint")
        manifest.training["config"]["out"] = str(entry)
        write_named(run / "checkpoint" / MANIFEST, manifest.to_json().encode(), mode=0o600)
        (run / "state.safetensors").unlink()  # weights and optimizer moments: a cache entry is not resumed
        write_named(run / "done", b"ok\n", mode=0o600)

    if ready(entry):
        (log or (lambda m: None))(f"reusing adapted checkpoint {entry / 'checkpoint'}")
        try:  # an entry of an older mixaug still holds its optimizer state
            (entry / "state.safetensors").unlink(missing_ok=True)
        except OSError:
            pass
        return entry / "checkpoint"
    # built in a private folder and renamed into place; a second run adapting the same texts waits for it
    return build_entry(entry, build, ready, wait=ADAPT_WAIT_S) / "checkpoint"


def _load_init(folder: str, adaptor: Adaptor, lm) -> None:
    """Stage 2 starts from an existing checkpoint's adaptor (and LoRA) weights."""
    from safetensors.torch import load_file

    from ..inversion.checkpoint import LORA_DIR, load_adaptor

    manifest = validate_checkpoint(folder)
    adaptor.load_state_dict(load_adaptor(folder, manifest).state_dict())
    if manifest.lora:
        from peft import set_peft_model_state_dict

        lora = load_file(Path(folder) / LORA_DIR / "adapter_model.safetensors")
        set_peft_model_state_dict(lm, {k: v.float() for k, v in lora.items()})
