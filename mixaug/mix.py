"""Pair planning and embedding mixing: which rows to make (--balance's per-class quota, rare classes first)
and how to pair them (intra, inter, random, SMOTE-style neighbours, the labeller's boundary, or transfer: a
row of another class lends its offset from its class's mean, GE3's extrapolation).

The plan (pairs, λ, per-row seeds) is computed from the labels, --seed and, for neighbours/boundary, the
rows' embeddings (bit-identical whatever the batch size) and the labeller fitted on them, before any row is
decoded, so the output cannot depend on batch size or device, and a plan could be executed in shards.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .config import DEFAULT_NEIGHBOURS
from .errors import MixaugError

NEEDS_EMBEDDINGS = ("neighbours", "boundary")  # pairings whose plan reads the rows' embeddings
SAME_CLASS = ("intra", "neighbours")
OTHER_CLASS = ("inter", "boundary", "transfer")  # pairings whose partner b is of another class
# --pairing boundary: the weights of parent a tried for each pair; the one kept puts the mixture closest to
# the labeller's boundary while a's class still wins
BOUNDARY_LAMBDAS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
# a per-class plan (--balance, quota) squeezes λ ~ Beta(α, α) into this range: near a parent, the mixtures
# of one row with different partners decode to the same sentence (TREC tail, 85 intra decodes: 23 of the 51
# with λ outside [0.15, 0.85] repeated an earlier one, 5 of the 34 inside), and a rare class's few rows meet
# the same partners again and again
QUOTA_LAMBDAS = (0.2, 0.8)
SPREAD_PARTNERS = 50  # a recurring row's nearest partners taken in turn at most (memory: rows x this many)
PAIR_CYCLE_MAX = 100_000  # a class's unordered pairs walked in a seeded order up to this many; beyond, drawn
KNN_BLOCK = 1024  # rows whose neighbours are found at a time: memory for a block's similarities, not n x n


def check_pairable(labels: Sequence | None, pairing: str) -> None:
    """Fail early, naming the class, when the pairing strategy cannot be satisfied."""
    if labels is None:
        if pairing != "random":
            raise MixaugError(f"--pairing {pairing} needs a label column; this dataset has none (use --pairing random)")
        return
    counts = Counter(labels)
    if pairing in SAME_CLASS:
        singles = [str(k) for k, v in counts.items() if v < 2]
        if singles:
            raise MixaugError(
                f"--pairing {pairing} needs at least 2 examples per class; class "
                f"{', '.join(repr(s) for s in singles[:5])} has only 1 (add examples or use --pairing random)"
            )
    if pairing in OTHER_CLASS and len(counts) < 2:
        raise MixaugError(f"--pairing {pairing} needs at least 2 classes; the dataset has 1")


def class_quota(labels: Sequence, balance: float, n: int | None = None, per_row: int | None = None) -> dict:
    """New rows per class for --balance: without n, as many as bring every class up to `balance` x the
    largest class's count (1.0 = equal); with n, up to n rows, each given to the class that has the fewest
    rows at that point (rare classes first; ties in first-seen order). per_row caps a class at per_row x its
    own rows (--max-per-row), so the total can fall short of either. A pure function of the labels."""
    counts = Counter(labels)
    classes = list(dict.fromkeys(labels))
    cap = {c: math.inf if per_row is None else per_row * counts[c] for c in classes}
    if n is None:
        target = math.ceil(balance * max(counts.values()) - 1e-9)
        return {c: int(max(0, min(target - counts[c], cap[c]))) for c in classes}
    quota = dict.fromkeys(classes, 0)
    heap = [(counts[c], k) for k, c in enumerate(classes)]
    heapq.heapify(heap)
    for _ in range(n):
        if not heap:
            break
        have, k = heapq.heappop(heap)
        quota[classes[k]] += 1
        if quota[classes[k]] < cap[classes[k]]:
            heapq.heappush(heap, (have + 1, k))
    return quota


def nearest(emb: np.ndarray, rows: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
    """For each of `rows`, the (up to) k rows of `pool` most cosine-similar to it, itself excluded, nearest
    first (ties by row number): [len(rows), min(k, ...)] row indices. Both the rows and the pool are walked
    in blocks of KNN_BLOCK, keeping a running top k, so memory stays bounded whatever the dataset's size."""
    k = max(0, min(k, len(pool) - int(np.isin(rows, pool).any())))
    out = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), KNN_BLOCK):
        block = rows[start : start + KNN_BLOCK]
        query = _unit(np.asarray(emb[block], dtype=np.float32))
        best_s = np.empty((len(block), 0))
        best_i = np.empty((len(block), 0), dtype=np.int64)
        for at in range(0, len(pool), KNN_BLOCK):
            part = pool[at : at + KNN_BLOCK]
            sims = np.round((query @ _unit(np.asarray(emb[part], dtype=np.float32)).T).astype(np.float64), 6)
            sims[part[None, :] == block[:, None]] = -np.inf  # ties in the last bits do not decide a neighbour
            cand_s = np.concatenate([best_s, sims], axis=1)
            cand_i = np.concatenate([best_i, np.broadcast_to(part, sims.shape)], axis=1)
            order = np.lexsort((cand_i, -cand_s), axis=1)[:, :k]
            best_s = np.take_along_axis(cand_s, order, axis=1)
            best_i = np.take_along_axis(cand_i, order, axis=1)
        out[start : start + len(block)] = best_i
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def plan_pairs(
    labels: Sequence | None,
    n: int,
    pairing: str,
    alpha: float,
    seed: int,
    round_: int = 0,
    quota: dict | None = None,
    emb: np.ndarray | None = None,
    neighbours: int = DEFAULT_NEIGHBOURS,
    proba: Callable[[np.ndarray], np.ndarray] | None = None,
    renormalize: bool = True,
) -> pd.DataFrame:
    """n rows of (a, b, lam, seed): parent row indices, λ ~ Beta(α, α) weighting a, and a decoding seed.

    quota (class -> rows, --balance) draws parent a from each class that many times instead of uniformly
    (n is then its total). pairing: intra/inter/random draw b from a's class/the other classes/anywhere;
    neighbours from the `neighbours` rows of a's class nearest to a in `emb` (SMOTE's partner); boundary
    from the nearest rows of the other classes, with λ (from BOUNDARY_LAMBDAS) the one that leaves the
    labeller (`proba` over the mixed embedding) least sure while a's class still wins; transfer from the
    rows of the other classes without replacement (a seeded cycle through them per class of a, so a rare
    class's rows get as many different donors as there are), with λ ≤ 0.5 (folded), the weight of a beside
    a + b's offset from its class's mean (see `mix`). A per-class plan spreads its targets: intra walks a
    class's pairs, neighbours/boundary give a recurring row its nearest partners in turn, and λ (but
    boundary's and transfer's) is squeezed into QUOTA_LAMBDAS. The plan is a pure function of the labels,
    the seed, the round and, for neighbours/boundary, the embeddings."""
    size = len(labels) if labels is not None else None
    if size is None:
        raise MixaugError("plan_pairs needs the labels list (or a list of None for unlabelled rows)")
    if size < 2:
        raise MixaugError("need at least 2 rows to mix")
    check_pairable(None if all(l is None for l in labels) else labels, pairing)
    if pairing in NEEDS_EMBEDDINGS and emb is None:
        raise MixaugError(f"--pairing {pairing} needs the rows' embeddings")
    if pairing == "boundary" and proba is None:
        raise MixaugError("--pairing boundary needs a labeller")
    rng = np.random.default_rng([seed, round_])
    codes, uniques = pd.factorize(pd.Series(list(labels), dtype=object))
    by_class = class_rows(codes)
    b = None  # a per-class intra plan draws its pairs whole
    if quota is None:
        a = rng.integers(0, size, n)
    else:
        code_of = {u: c for c, u in enumerate(uniques)}
        a, b = _quota_parents(by_class, [(code_of[c], q) for c, q in quota.items() if q > 0], pairing, rng)
        n = len(a)
    if b is None and pairing in NEEDS_EMBEDDINGS:
        b = _partners(codes, by_class, a, rng, emb, neighbours, pairing == "neighbours", spread=quota is not None)
    elif b is None and pairing == "transfer":
        b = _donors(codes, a, rng)
    elif b is None:
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
    if pairing == "transfer":
        lam = np.minimum(lam, 1 - lam)
    elif quota is not None:
        low, high = QUOTA_LAMBDAS
        lam = low + (high - low) * lam
    if pairing == "boundary":
        lam = _boundary_lambdas(emb, a, b, codes, proba, renormalize)
    seeds = rng.integers(0, 2**31 - 1, n)
    return pd.DataFrame({"a": a, "b": b, "lam": np.round(lam, 6), "seed": seeds})


def _quota_parents(by_class: dict, wanted: list, pairing: str, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """A per-class plan's parents a (each class's rows in turn, its quota's worth, the classes shuffled
    together) and, for intra, their partners b (each of a class's pairs once before any again); b is None
    for the other pairings, which find it from a."""
    if pairing == "intra":
        parts = [_pair_cycle(by_class[c], q, rng) for c, q in wanted]
    else:
        parts = [(_cycle(by_class[c], q, rng), None) for c, q in wanted]
    order = rng.permutation(sum(q for _, q in wanted))
    a = np.concatenate([x for x, _ in parts] or [np.empty(0, np.int64)])[order]
    if pairing != "intra":
        return a, None
    return a, np.concatenate([y for _, y in parts] or [np.empty(0, np.int64)])[order]


def _cycle(rows: np.ndarray, q: int, rng) -> np.ndarray:
    """q of `rows`, each once in a seeded order before any is taken again (and so on)."""
    laps = -(-q // len(rows))
    return np.concatenate([rng.permutation(rows) for _ in range(laps)])[:q]


def _pair_cycle(rows: np.ndarray, q: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """q intra pairs of a class for a per-class plan: its unordered pairs in a seeded order, each once before
    any again, which parent is a alternating from one lap to the next (a class of more than PAIR_CYCLE_MAX
    pairs: a in turn, b drawn from the rest)."""
    m = len(rows)
    if m * (m - 1) // 2 > PAIR_CYCLE_MAX:
        a = _cycle(rows, q, rng)
        b = rows[(np.searchsorted(rows, a) + rng.integers(1, m, q)) % m]
        return a, b
    i, j = np.triu_indices(m, 1)
    laps = -(-q // len(i))
    picks = np.concatenate([rng.permutation(len(i)) for _ in range(laps)])[:q]
    flip = (np.arange(q) // len(i)) % 2 == 1
    first, second = rows[i[picks]], rows[j[picks]]
    return np.where(flip, second, first), np.where(flip, first, second)


def class_rows(codes: np.ndarray) -> dict:
    """code -> the positions holding it, ascending: one sort, not a pass over every row for every class."""
    order = np.argsort(codes, kind="stable")
    present, starts = np.unique(codes[order], return_index=True)
    return {int(c): part for c, part in zip(present, np.split(order, starts[1:]))}


def _partners(codes, by_class, a, rng, emb, k: int, same_class: bool, spread: bool = False) -> np.ndarray:
    """b for each a: a random one of a's k nearest rows of its own class (same_class) or of the others. spread
    (a per-class plan, where a row recurs): a row's j-th use takes its j-th nearest (of at least k, as many
    as it has uses up to SPREAD_PARTNERS), so it meets as many partners as it has uses before any again."""
    b = np.empty(len(a), dtype=np.int64)
    for c, where in class_rows(codes[a]).items():
        rows, uses = np.unique(a[where], return_counts=True)
        pool = by_class[c] if same_class else np.flatnonzero(codes != c)
        wide = max(k, min(int(uses.max()), SPREAD_PARTNERS)) if spread else k
        near = dict(zip(rows.tolist(), nearest(emb, rows, pool, wide)))
        seen: Counter = Counter()
        for i in where:
            cand = near[int(a[i])]
            if spread:
                b[i] = cand[seen[int(a[i])] % len(cand)]
                seen[int(a[i])] += 1
            else:
                b[i] = cand[rng.integers(0, len(cand))]
    return b


def _donors(codes, a, rng) -> np.ndarray:
    """b for each a (--pairing transfer): the rows of the other classes in a seeded order, walked in turn
    for each class of a (and again from the start once all are used): different donors before repeats."""
    b = np.empty(len(a), dtype=np.int64)
    for c, where in class_rows(codes[a]).items():
        pool = rng.permutation(np.flatnonzero(codes != c))
        b[where] = pool[np.arange(len(where)) % len(pool)]
    return b


def class_share(pairing: str, lam: np.ndarray) -> np.ndarray:
    """Per pair, the weight of a's class in the new row, which the label policies read: λ, or 1 for
    transfer (b lends its offset from its class's mean, not its class)."""
    return np.ones_like(lam) if pairing == "transfer" else lam


def class_centres(emb: np.ndarray, labels: Sequence) -> Callable[[np.ndarray], np.ndarray]:
    """--pairing transfer: b -> the mean embedding of b's class, per row. The means are summed in float64 in
    row order, KNN_BLOCK rows at a time (emb may be a memmap), so they do not depend on the batch size."""
    codes, _ = pd.factorize(pd.Series(list(labels), dtype=object))
    sums = np.zeros((codes.max() + 1, emb.shape[1]))
    for start in range(0, len(codes), KNN_BLOCK):
        np.add.at(sums, codes[start : start + KNN_BLOCK], np.asarray(emb[start : start + KNN_BLOCK], np.float64))
    means = (sums / np.bincount(codes)[:, None]).astype(np.float32)
    return lambda b: means[codes[np.asarray(b)]]


def _boundary_lambdas(emb, a, b, codes, proba, renormalize: bool) -> np.ndarray:
    """Per pair, the weight of a in BOUNDARY_LAMBDAS whose mixture the labeller still gives a's class with the
    smallest margin over the runner-up; where no λ keeps a's class, the one that comes closest."""
    grid = np.array(BOUNDARY_LAMBDAS)
    lam = np.empty(len(a))
    for start in range(0, len(a), KNN_BLOCK):
        ia, ib = a[start : start + KNN_BLOCK], b[start : start + KNN_BLOCK]
        m = len(ia)
        h = mix(emb, np.repeat(ia, len(grid)), np.repeat(ib, len(grid)), np.tile(grid, m), renormalize)
        p = np.asarray(proba(h), dtype=np.float64).reshape(m, len(grid), -1)
        cls = np.repeat(codes[ia], len(grid)).reshape(m, len(grid), 1)  # a's class, for every λ
        own = np.take_along_axis(p, cls, axis=2)[..., 0]
        others = p.copy()
        np.put_along_axis(others, cls, -np.inf, axis=2)
        margin = np.round(own - others.max(axis=2), 9)
        score = np.where(margin > 0, margin, np.inf)
        pick = np.where(np.isfinite(score).any(axis=1), score.argmin(axis=1), margin.argmax(axis=1))
        lam[start : start + m] = grid[pick]
    return lam


def mix(
    emb: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    lam: np.ndarray,
    renormalize: bool = True,
    centre: np.ndarray | None = None,
) -> np.ndarray:
    """h = λ·h_a + (1−λ)·h_b, optionally projected back to unit norm (see README: 'Mixing'). With `centre`
    (per pair, the mean of b's class: --pairing transfer), b enters as its offset from that mean laid on a:
    h = λ·h_a + (1−λ)·(h_a + h_b − centre) = h_a + (1−λ)·(h_b − centre)."""
    lam = np.asarray(lam, dtype=np.float32)[:, None]
    other = emb[b] if centre is None else emb[a] + emb[b] - centre
    h = lam * emb[a] + (1 - lam) * other
    if renormalize:
        h = h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
    return h.astype(np.float32)
