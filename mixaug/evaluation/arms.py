"""The arms of `mixaug eval`: each a named function of one signature, `(Method, Subset) -> ArmRows`,
held in ARMS under the names of config.EVAL_ARMS; the rows each arm adds to a sampled subset, and the run of
one arm under every classifier."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property, partial

import numpy as np
import pandas as pd

from ..config import DEFAULT_NEIGHBOURS
from ..data.provenance import WEIGHT
from ..errors import MixaugError
from ..inversion.decode import DecodeStats
from .baselines import eda, embed_mixup, paraphrase
from .classifiers import CLASSIFIERS, Example, Scores, TestSet
from .config import EVAL_ARMS, POOL, WEIGHTED, EvalConfig, Method, variant_options


def sample_shots(labels: Sequence, shots, seed: int, rare: Sequence = (), rare_shots: int = 3) -> np.ndarray:
    """Row indices: `shots` per class (all rows of a smaller class; `rare_shots` for the classes in `rare`),
    or every row for 'all'."""
    idx = np.arange(len(labels))
    if shots == "all" and not len(rare):
        return idx
    rng = np.random.default_rng([seed, 11])
    labels = np.asarray(labels, dtype=object)
    picked = []
    for cls in pd.unique(labels):
        rows = idx[labels == cls]
        k = rare_shots if cls in rare else (len(rows) if shots == "all" else int(shots))
        picked.extend(rng.choice(rows, size=min(k, len(rows)), replace=False).tolist())
    return np.array(sorted(picked))


def rare_classes(labels: Sequence, count: int, seed: int) -> list:
    """The `count` classes the imbalanced setting cuts for this seed (drawn at random, in first-seen order)."""
    classes = list(pd.unique(np.asarray(labels, dtype=object)))
    if not count:
        return []
    if count >= len(classes):
        raise MixaugError(f"--rare-classes {count} leaves no common class: TRAIN has {len(classes)} classes")
    picked = set(np.random.default_rng([seed, 17]).choice(len(classes), count, replace=False).tolist())
    return [c for k, c in enumerate(classes) if k in picked]


# -- the arms ---------------------------------------------------------------------------------------------
@dataclass
class Subset:
    """What every arm gets for one (shots, seed) run: the sampled TRAIN rows and the shared tools."""

    texts: list
    labels: list
    seed: int
    rare: list  # the imbalanced setting's cut classes ([] when balanced)
    cfg: EvalConfig
    stack: object
    embed: Callable[[Sequence[str]], np.ndarray]
    shared: dict
    text_column: str = "text"  # TRAIN's text column (mixaug+pool reads TRAIN's texts from it)

    @cached_property
    def quota(self) -> dict | None:
        """Imbalanced: new rows per class, rare classes first up to the largest (capped by max_new_rows)."""
        if not self.rare:
            return None
        from ..mix import class_quota

        quota = class_quota(self.labels, 1.0)
        if sum(quota.values()) > self.cfg.max_new_rows:
            quota = class_quota(self.labels, 1.0, self.cfg.max_new_rows)
        return quota

    @property
    def n_new(self) -> int:
        quota = self.quota
        if quota is not None:
            return sum(quota.values())
        return min(self.cfg.max_new_rows, max(1, int(round(self.cfg.ratio * len(self.texts)))))

    @property
    def originals(self) -> list[Example]:
        return [Example(t, t, 1.0, y, y) for t, y in zip(self.texts, self.labels)]

    def per_class(self, make: Callable[[list, list, int, int], tuple[list, list]]) -> list[Example]:
        """make(texts, labels, n, seed) -> (texts, labels): over all rows when balanced; imbalanced, once per
        class with new rows to make, on that class's rows alone."""
        if self.quota is None:
            texts, labels = make(self.texts, self.labels, self.n_new, self.seed)
        else:
            texts, labels = [], []
            for k, (cls, n) in enumerate(self.quota.items()):
                rows = [t for t, y in zip(self.texts, self.labels) if y == cls]
                if n and rows:
                    t, y = make(rows, [cls] * len(rows), n, self.seed + 7919 * k)
                    texts, labels = texts + t, labels + y
        return [Example(t, t, 1.0, y, y) for t, y in zip(texts, labels)]

    def pairs(self, plan: pd.DataFrame) -> list[Example]:
        """Rows that mix two originals' features (a classifier's own space) with the λ-interpolated label."""
        t, y = self.texts, self.labels
        return [Example(t[a], t[b], float(l), y[a], y[b]) for a, b, l in zip(plan.a, plan.b, plan.lam)]


@dataclass
class ArmRows:
    """An arm's training rows for the classifiers (originals included) and what it measured making them."""

    rows: list[Example]
    intrusion: list[dict] = field(default_factory=list)
    decode: DecodeStats | None = None


def arm_none(m: Method, sub: Subset) -> ArmRows:
    return ArmRows(sub.originals)


def arm_class_weights(m: Method, sub: Subset) -> ArmRows:
    """No new rows: each original weighted n / (classes x its class's size), scikit-learn's 'balanced'."""
    from collections import Counter

    counts = Counter(sub.labels)
    w = {c: len(sub.labels) / (len(counts) * k) for c, k in counts.items()}
    return ArmRows([replace(e, weight=w[e.label_a]) for e in sub.originals])


def arm_oversample(m: Method, sub: Subset) -> ArmRows:
    """Random oversampling (imbalanced-learn's RandomOverSampler): copies of rows drawn with replacement."""

    def copies(texts, labels, n, seed):
        pick = np.random.default_rng([seed, 13]).integers(0, len(texts), n)
        return [texts[i] for i in pick], [labels[i] for i in pick]

    return ArmRows(sub.originals + sub.per_class(copies))


def arm_eda(m: Method, sub: Subset) -> ArmRows:
    return ArmRows(sub.originals + sub.per_class(eda))


def arm_paraphrase(m: Method, sub: Subset) -> ArmRows:
    from ..inversion.models import DEFAULT_LM, load_lm

    if "para_lm" not in sub.shared:
        sub.shared["para_lm"] = load_lm(DEFAULT_LM, sub.stack.device)[:2]

    def para(texts, labels, n, seed):
        return paraphrase(texts, labels, n, seed, *sub.shared["para_lm"], batch_size=sub.cfg.decode_batch)

    return ArmRows(sub.originals + sub.per_class(para))


def arm_embed_mixup(m: Method, sub: Subset) -> ArmRows:
    """Mixup of two rows' features with the mixed label: random pairs; imbalanced, pairs within a rare class."""
    from ..mix import plan_pairs

    if sub.quota is None:
        a, b, lam = embed_mixup(len(sub.texts), sub.n_new, sub.seed)
        return ArmRows(sub.originals + sub.pairs(pd.DataFrame({"a": a, "b": b, "lam": lam})))
    return ArmRows(sub.originals + sub.pairs(plan_pairs(sub.labels, 0, "intra", 0.4, sub.seed, quota=sub.quota)))


def arm_smote(m: Method, sub: Subset) -> ArmRows:
    """SMOTE (Chawla et al.; imbalanced-learn's defaults): a row of the class and one of its 5 nearest
    same-class rows in the encoder's space, mixed at a uniform gap (λ ~ Beta(1, 1)). Each classifier mixes the
    two rows in its own feature space (for logreg that is SMOTE on the frozen embeddings exactly)."""
    from ..mix import plan_pairs

    emb = sub.embed(sub.texts)
    plan = plan_pairs(
        sub.labels, sub.n_new, "neighbours", 1.0, sub.seed, quota=sub.quota, emb=emb, neighbours=DEFAULT_NEIGHBOURS
    )
    return ArmRows(sub.originals + sub.pairs(plan))


def _variant(m: Method) -> dict:
    options = variant_options(m.variant)
    if options is None:
        raise MixaugError(f"bad method '{m.name}': unknown mixaug variant '{m.variant}'")
    return options


def arm_mixaug(m: Method, sub: Subset) -> ArmRows:
    """`pipeline.augment` itself on the subset (imbalanced: with --balance equal, the same quota)."""
    from ..pipeline import augment
    from ..stacks import forget_stack

    cfg, stack = sub.cfg, sub.stack
    frame = pd.DataFrame({"text": sub.texts, "label": sub.labels})
    before = replace(stack.inverter.totals)
    out = augment(
        frame,
        text_column="text",
        label_column="label",
        num_augmented=sub.n_new,
        balance="equal" if sub.quota is not None else None,
        pairing=m.pairing,
        label_policy=m.policy,
        seed=sub.seed,
        only_new=True,
        checkpoint=cfg.checkpoint,
        device=cfg.device,
        decode_batch=cfg.decode_batch,
        precision=cfg.precision,
        task_steps=cfg.finetune_steps,
        intrusion=m.intrusion,
        **_variant(m),
        **(dict(adapt_on=cfg.train, adapt_on_column=sub.text_column) if POOL in m.variant_parts else {}),
    )
    if {"adapt", "task"} & set(m.variant_parts):  # its stack was adapted to this subset alone: free it
        forget_stack(out.attrs["mixaug_stats"]["checkpoint"])
    decode = stack.inverter.totals.since(before)
    stats = out.attrs["mixaug_stats"]  # the label policy and pairing augment resolved
    if stats["label_policy"] == "soft":  # a readable sentence with the λ-interpolated label distribution
        new = [
            Example(t, t, float(l), a, b)
            for t, l, a, b in zip(
                out["text"], out["mixaug_lambda"], out["mixaug_parent_a_label"], out["mixaug_parent_b_label"]
            )
        ]
    else:
        new = [Example(t, t, 1.0, y, y) for t, y in zip(out["text"], out["label"])]
    if WEIGHTED in m.variant_parts:  # how the rows are used: each row weighs its mixaug_weight
        new = [replace(e, weight=e.weight * float(w)) for e, w in zip(new, out[WEIGHT])]
    intrusion = []
    if stats["label_policy"] == "hard" and m.intrusion == "keep":  # dropped rows would hide the rate
        intrusion = [
            {
                "method": m.name,
                "pairing": stats["pairing"],
                "lambda": float(l),
                "intrusion": bool(i),
                "confidence": float(c),
            }
            for l, i, c in zip(out["mixaug_lambda"], out["mixaug_intrusion"], out["mixaug_label_confidence"])
        ]
    return ArmRows(sub.originals + new, intrusion, decode)


# Each arm is named once, in evaluation.config.EVAL_ARMS (so a config is checked without importing this module);
# its code is the function arm_<name> above ('-' written '_').
ARMS: dict[str, Callable[[Method, Subset], ArmRows]] = {
    name: globals()[f"arm_{name.replace('-', '_')}"] for name in EVAL_ARMS
}


def _run_arm(m: Method, sub: Subset, test: TestSet, shots, seed: int) -> dict:
    """One arm on one subset, scored by every classifier: the journal's record of it."""
    started = time.time()
    made = ARMS[m.kind](m, sub)
    seconds = time.time() - started
    n_new = len(made.rows) - len(sub.texts)
    rate = n_new / max(seconds, 1e-9) if n_new > 0 else None
    runs = []
    for classifier in sub.cfg.classifiers:
        score = CLASSIFIERS[classifier]
        if classifier == "finetune":
            score = partial(score, steps=sub.cfg.finetune_steps)
        got: Scores = score(made.rows, test, sub.stack.encoder, sub.embed, sub.seed)
        rare = [got.recall[str(c)] for c in sub.rare if str(c) in got.recall]
        runs.append(
            {
                "classifier": classifier,
                "method": m.name,
                "shots": shots,
                "seed": seed,
                "accuracy": got.accuracy,
                "macro_f1": got.macro_f1,
                "rare_recall": float(np.mean(rare)) if rare else None,
                "rare_classes": [str(c) for c in sub.rare],
                "new_rows": n_new,
                "seconds": round(seconds, 2),
            }
        )
    return {
        "runs": runs,
        "intrusion": [dict(r, shots=shots) for r in made.intrusion],
        "rate": rate,
        "decode": asdict(made.decode) if made.decode is not None else None,
    }
