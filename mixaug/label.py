"""Hard labels for generated sentences: the paper's supervised warm-up, as a fitted task model.

A logistic regression on the input dataset's own (encoder) embeddings labels each generated sentence
after re-encoding; a label that is neither parent's marks a *manifold intrusion*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The regression's memory while fitting is rows x classes floats: past this many, it is fitted on an equal
# seeded share of each class's rows (every class kept), so many classes do not multiply the rows' cost
FIT_CELLS = 20_000_000  # 160 MB of float64


class Labeller:
    """A classifier fitted on (embedding, label) pairs of the input dataset."""

    def __init__(self, emb: np.ndarray, labels: Sequence, seed: int = 0):
        from sklearn.linear_model import LogisticRegression

        self.classes = list(dict.fromkeys(labels))  # first-seen order, original Python values
        index = {c: i for i, c in enumerate(self.classes)}
        y = np.array([index[l] for l in labels])
        self.model = None  # a one-class dataset needs no model: every row gets that class
        if len(self.classes) > 1:
            self.model = LogisticRegression(max_iter=2000, C=10.0, random_state=seed)
            rows = fit_rows(y, len(self.classes), seed)
            self.model.fit(emb if rows is None else emb[rows], y if rows is None else y[rows])

    def proba(self, emb: np.ndarray) -> np.ndarray:
        """[n, n_classes] probabilities in the order of self.classes."""
        if self.model is None:
            return np.ones((len(emb), 1))
        p = self.model.predict_proba(emb)
        out = np.zeros((len(emb), len(self.classes)))
        out[:, self.model.classes_] = p
        return out


def fit_rows(y: np.ndarray, classes: int, seed: int) -> np.ndarray | None:
    """None (every row) while rows x classes <= FIT_CELLS; else, ascending, up to the same number of rows
    of each class (drawn with the seed; at least one), about FIT_CELLS / classes rows in all."""
    if len(y) * classes <= FIT_CELLS:
        return None
    from .mix import class_rows

    share = max(1, FIT_CELLS // classes // classes)
    rng = np.random.default_rng([seed, 7])
    parts = class_rows(y).values()  # ascending by class, as the draws consume the seed
    return np.sort(np.concatenate([p if len(p) <= share else rng.choice(p, share, replace=False) for p in parts]))


@dataclass
class LabelResult:
    labels: list
    confidence: np.ndarray
    intrusion: np.ndarray
    soft: list[dict] | None


def assign_labels(
    policy: str, proba: np.ndarray, classes: list, label_a: Sequence, label_b: Sequence, lam: np.ndarray
) -> LabelResult:
    """Apply a label policy. hard: the classifier's label; parent: the λ-dominant parent's;
    soft: the dominant parent's label plus the λ-interpolated distribution. Confidence is always the
    classifier's probability of the label written; intrusion is judged on the classifier's label."""
    index = {c: i for i, c in enumerate(classes)}
    hard_idx = proba.argmax(axis=1)
    hard = [classes[i] for i in hard_idx]
    intrusion = np.array([h != a and h != b for h, a, b in zip(hard, label_a, label_b)])
    dominant = [a if l >= 0.5 else b for a, b, l in zip(label_a, label_b, lam)]
    labels = hard if policy == "hard" else dominant
    confidence = np.array([proba[i, index[l]] for i, l in enumerate(labels)])
    soft = None
    if policy == "soft":
        soft = []
        for a, b, l in zip(label_a, label_b, lam):
            dist = {str(a): 0.0, str(b): 0.0}
            dist[str(a)] += float(l)
            dist[str(b)] += 1.0 - float(l)
            soft.append({k: round(v, 6) for k, v in dist.items()})
    return LabelResult(labels, confidence, intrusion, soft)
