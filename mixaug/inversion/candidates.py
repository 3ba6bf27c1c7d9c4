"""The loaded models (`Stack`) and decoding the mixed targets into text with them: the decode cache first, then K candidates per target (the one whose
re-encoding is closest kept) or the encoder-guided search; and the run's decode summary. The pipeline's
generate loop calls these for each block of the plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import AugmentConfig
from ..encode import Encoder, cosine_rows
from .decode_cache import DecodeCache
from .invert import DecodeOptions, Inverter


@dataclass
class Stack:
    """The models a checkpoint needs: its encoder and its inverter (adaptor + LM)."""

    encoder: Encoder
    inverter: Inverter
    checkpoint: Path
    device: str
    decoded: DecodeCache


def _decode_into_cache(
    stack: Stack,
    targets: np.ndarray,
    seeds: list[int],
    keys: list[str],
    opts: DecodeOptions,
    cfg: AugmentConfig,
    advance: Callable[[int], None],
    decoder=None,
    anchors: list | None = None,
) -> None:
    """Decode rows into the decode cache as they finish, in groups: an interrupted run keeps them all.
    decoder: where to decode (a `RayDecoder`); default the stack's own inverter."""
    pending: list[tuple[str, str]] = []

    def finished(j: int, text: str) -> None:
        pending.append((keys[j], text))
        advance(1)
        if len(pending) >= cfg.decode_batch:
            stack.decoded.add(*zip(*pending))
            pending.clear()

    try:
        (decoder or stack.inverter).decode(
            targets, seeds=seeds, options=opts, batch_size=cfg.decode_batch, on_row=finished, anchors=anchors
        )
    finally:
        if pending:
            stack.decoded.add(*zip(*pending))


def decode_candidates(
    stack: Stack,
    targets: np.ndarray,
    seeds: np.ndarray,
    cfg: AugmentConfig,
    advance: Callable[[int], None],
    decoder=None,
    anchors: list | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Decode K candidates per target; keep the one whose re-encoding is closest to the target (or, with
    search="guided", the sentence an encoder-guided search found closest). anchors: per target, the words
    and bonuses its decode is pulled toward (anchor.row_anchors; None = none)."""
    anchors = list(anchors) if anchors is not None else [()] * len(targets)  # the inverter skips rows without
    if cfg.search == "guided":
        return _decode_guided(stack, targets, seeds, cfg, advance, anchors)
    best_text = [""] * len(targets)
    best_emb = np.zeros_like(targets)
    best_cos = np.full(len(targets), -2.0)
    for k in range(cfg.num_candidates):
        temp = cfg.temperature if k == 0 else (cfg.temperature or cfg.candidate_temperature)
        opts = DecodeOptions(max_new_tokens=cfg.max_new_tokens, temperature=temp, top_p=cfg.top_p)
        row_seeds = [int(s) * 1009 + k for s in seeds]
        keys = [DecodeCache.key(t, rs, opts, anchors=an) for t, rs, an in zip(targets, row_seeds, anchors)]
        todo = [i for i, key in enumerate(keys) if key not in stack.decoded]
        advance(len(targets) - len(todo))
        _decode_into_cache(
            stack,
            targets[todo],
            [row_seeds[i] for i in todo],
            [keys[i] for i in todo],
            opts,
            cfg,
            advance,
            decoder,
            [anchors[i] for i in todo],
        )
        texts = [stack.decoded[key] for key in keys]
        emb = stack.encoder.encode(texts, batch_size=cfg.decode_batch)
        cos = cosine_rows(emb, targets)
        better = cos > best_cos
        for i in np.flatnonzero(better):
            best_text[i] = texts[i]
        best_emb[better] = emb[better]
        best_cos[better] = cos[better]
    return best_text, best_emb, best_cos


def _decode_guided(stack: Stack, targets: np.ndarray, seeds: np.ndarray, cfg: AugmentConfig, advance, anchors):
    """Encoder-guided search (search.py) for the rows the decode cache does not hold yet; always local."""
    from .search import guided_decode

    opts = DecodeOptions(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
    search = f"guided:{cfg.search_width}"
    keys = [DecodeCache.key(t, int(s), opts, search, an) for t, s, an in zip(targets, seeds, anchors)]
    todo = [i for i, key in enumerate(keys) if key not in stack.decoded]
    advance(len(targets) - len(todo))
    for start in range(0, len(todo), cfg.decode_batch):  # in groups, so an interrupted run keeps what is done
        part = todo[start : start + cfg.decode_batch]
        texts, _ = guided_decode(
            stack.inverter,
            lambda t: stack.encoder.encode(t, batch_size=cfg.decode_batch),
            targets[part],
            [int(seeds[i]) for i in part],
            opts,
            cfg.search_width,
            cfg.decode_batch,
            anchors=[anchors[i] for i in part],
        )
        stack.decoded.add([keys[i] for i in part], texts)
        advance(len(part))
    texts = [stack.decoded[key] for key in keys]
    emb = stack.encoder.encode(texts, batch_size=cfg.decode_batch)
    return texts, emb, cosine_rows(emb, targets)


def decode_summary(stack: Stack, run, cfg: AugmentConfig) -> dict:
    """What the LM did in this run (rows served from the decode cache cost nothing and are not counted)."""
    return {
        "rows": run.rows,
        "tokens": run.tokens,
        "seconds": round(run.seconds, 2),
        "tokens_per_s": round(run.tokens_per_s, 1),
        "batch_size": cfg.decode_batch,
        "precision": stack.inverter.precision,
    }
