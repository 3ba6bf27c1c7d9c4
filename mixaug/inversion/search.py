"""Encoder-guided decoding: a beam search over the inverter's continuations, scored by the encoder.

The inverter proposes; the encoder judges. Every hypothesis is extended by `segment` tokens in
`width` ways (one greedy continuation and width−1 sampled ones), every extension is re-encoded as text,
and each row keeps the `width` whose embeddings are closest to its target. Finished sentences stay in
the pool, so a row ends with the closest sentence it saw. The decoder is the inverter's own decode
engine (continuing each hypothesis from its tokens); the encoder is a plain function, texts -> embeddings,
so this module knows nothing of rows, labels or files. Needs a Llama-family LM (the decode engine).

Cost: about width² continuations of `segment` tokens, and width² encodings, per row and segment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..encode import cosine_rows
from .decode import DecodeOptions

SEGMENT = 4  # tokens between two encoder judgements
EXPAND_TEMPERATURE = 0.8  # the sampled continuations'


@dataclass
class _Hyp:
    tokens: list[int]
    cos: float
    done: bool


def guided_decode(
    inverter,
    encode: Callable[[Sequence[str]], np.ndarray],
    targets: np.ndarray,
    seeds: Sequence[int],
    options: DecodeOptions,
    width: int = 3,
    batch_size: int = 64,
    segment: int = SEGMENT,
    anchors: Sequence | None = None,
) -> tuple[list[str], np.ndarray]:
    """For each target (unit-normalised rows), the sentence the search found closest to it, and that
    cosine. Deterministic for given seeds, whatever the batch size (the engine's rows are independent).
    anchors: per target, the words its continuations are pulled toward (anchor.py)."""
    n = len(targets)
    targets = np.asarray(targets, dtype=np.float32)
    beams: list[list[_Hyp]] = [[_Hyp([], -2.0, False)] for _ in range(n)]
    best: list[_Hyp] = [_Hyp([], -2.0, False) for _ in range(n)]
    greedy = replace(options, temperature=0.0, max_new_tokens=segment)
    sampled = replace(options, temperature=options.temperature or EXPAND_TEMPERATURE, max_new_tokens=segment)
    for round_ in range(-(-options.max_new_tokens // segment)):
        rows, prefixes, row_seeds, kinds = [], [], [], []
        for i, beam in enumerate(beams):
            for j, h in enumerate(beam):
                if h.done:
                    continue
                for k in range(width):
                    rows.append(i)
                    prefixes.append(h.tokens)
                    row_seeds.append(int(seeds[i]) * 1_000_003 + round_ * 10_007 + j * 101 + k)
                    kinds.append(k == 0)
        if not rows:
            break
        conts: list[list[int] | None] = [None] * len(rows)
        for is_greedy, opt in ((True, greedy), (False, sampled)):
            pick = [m for m, g in enumerate(kinds) if g == is_greedy]
            if not pick:
                continue
            out = inverter.continue_tokens(
                targets[[rows[m] for m in pick]],
                [prefixes[m] for m in pick],
                [row_seeds[m] for m in pick],
                opt,
                batch_size,
                anchors=[anchors[rows[m]] for m in pick] if anchors is not None else None,
            )
            for m, toks in zip(pick, out):
                conts[m] = toks
        cands = [(rows[m], prefixes[m] + conts[m], len(conts[m]) < segment) for m in range(len(rows))]
        cands = _unique(cands)
        texts = [inverter.detokenize(toks) for _, toks, _ in cands]
        emb = encode(texts)
        cos = cosine_rows(emb, targets[[i for i, _, _ in cands]])
        pools: list[list[_Hyp]] = [[h for h in beam if h.done] for beam in beams]
        for (i, toks, done), c in zip(cands, cos):
            done = done or len(toks) >= options.max_new_tokens
            pools[i].append(_Hyp(toks, float(c), done))
        for i, pool in enumerate(pools):
            if not pool:
                continue
            pool.sort(key=lambda h: -h.cos)  # stable: ties keep the order they were made in
            beams[i] = pool[:width]
            top = max((h for h in pool if h.done), key=lambda h: h.cos, default=None)
            if top is not None and top.cos > best[i].cos:
                best[i] = top
    for i, beam in enumerate(beams):  # a row whose beam never finished: its closest hypothesis
        if best[i].cos == -2.0 and beam:
            best[i] = beam[0]
    return [inverter.detokenize(h.tokens) for h in best], np.array([h.cos for h in best], dtype=np.float32)


def _unique(cands: list[tuple[int, list[int], bool]]) -> list[tuple[int, list[int], bool]]:
    """Drop a row's repeated candidates (the greedy and a sampled continuation often agree)."""
    seen: set[tuple[int, tuple[int, ...]]] = set()
    out = []
    for i, toks, done in cands:
        key = (i, tuple(toks))
        if key not in seen:
            seen.add(key)
            out.append((i, toks, done))
    return out
