"""Pair planning and embedding mixing.

The plan (pairs, λ, per-row seeds) is computed from the labels and --seed alone, before any model runs,
so the output cannot depend on batch size or device, and a plan could be executed in shards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .errors import MixaugError


def check_pairable(labels: Sequence | None, pairing: str) -> None:
    """Fail early, naming the class, when the pairing strategy cannot be satisfied."""
    if labels is None:
        if pairing != "random":
            raise MixaugError(f"--pairing {pairing} needs a label column; this dataset has none (use --pairing random)")
        return
    counts = Counter(labels)
    if pairing == "intra":
        singles = [str(k) for k, v in counts.items() if v < 2]
        if singles:
            raise MixaugError(
                f"--pairing intra needs at least 2 examples per class; class {', '.join(repr(s) for s in singles[:5])} "
                f"has only 1 (add examples or use --pairing random)"
            )
    if pairing == "inter" and len(counts) < 2:
        raise MixaugError("--pairing inter needs at least 2 classes; the dataset has 1")


def plan_pairs(labels: Sequence | None, n: int, pairing: str, alpha: float, seed: int, round_: int = 0) -> pd.DataFrame:
    """n rows of (a, b, lam, seed): parent row indices, λ ~ Beta(α, α) weighting a, and a decoding seed."""
    size = len(labels) if labels is not None else None
    if size is None:
        raise MixaugError("plan_pairs needs the labels list (or a list of None for unlabelled rows)")
    if size < 2:
        raise MixaugError("need at least 2 rows to mix")
    check_pairable(None if all(l is None for l in labels) else labels, pairing)
    rng = np.random.default_rng([seed, round_])
    codes = pd.factorize(pd.Series(list(labels), dtype=object))[0]
    by_class = {c: np.flatnonzero(codes == c) for c in np.unique(codes)}
    a = rng.integers(0, size, n)
    b = np.empty(n, dtype=np.int64)
    for i, ai in enumerate(a):
        if pairing == "intra":
            pool = by_class[codes[ai]]
        elif pairing == "inter":
            pool = np.flatnonzero(codes != codes[ai])
        else:
            pool = None
        if pool is None:
            bi = rng.integers(0, size - 1)
            b[i] = bi + (bi >= ai)
        else:
            pool = pool[pool != ai]
            b[i] = pool[rng.integers(0, len(pool))]
    lam = rng.beta(alpha, alpha, n)
    seeds = rng.integers(0, 2**31 - 1, n)
    return pd.DataFrame({"a": a, "b": b, "lam": np.round(lam, 6), "seed": seeds})


def mix(emb: np.ndarray, a: np.ndarray, b: np.ndarray, lam: np.ndarray, renormalize: bool = True) -> np.ndarray:
    """h = λ·h_a + (1−λ)·h_b, optionally projected back to unit norm (see README: 'Mixing')."""
    lam = np.asarray(lam, dtype=np.float32)[:, None]
    h = lam * emb[a] + (1 - lam) * emb[b]
    if renormalize:
        h = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
    return h.astype(np.float32)
