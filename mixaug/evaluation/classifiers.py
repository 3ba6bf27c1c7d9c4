"""The downstream classifiers of `mixaug eval`: one function each, the same signature, trained on originals
(+ new rows) and scored on TEST. Every one takes the same `Example` rows, so a method's new rows reach each
classifier the same way.

- `logreg`: logistic regression on frozen encoder embeddings (the setting where new rows can hardly help).
- `tfidf`: TF-IDF word 1–2-grams + logistic regression (the cheap production model).
- `finetune`: the encoder fine-tuned with a linear head for a fixed number of optimizer steps, the same
  for every arm, so augmentation is never credited with extra steps (a fixed number of epochs would give
  an arm with twice the rows twice the steps).

Each returns `Scores` (accuracy, macro-F1, recall per class) and honours a row's `weight` (the
class-weights arm), so the only thing that differs between two arms is the rows they hand in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..training.task import (
    Row as Example,  # one training row; embed-mixup mixes two texts, mixaug:soft keeps a λ target
)
from .config import EVAL_CLASSIFIERS, FINETUNE_STEPS


@dataclass
class TestSet:
    texts: list
    labels: list
    emb: np.ndarray  # the encoder's embeddings of `texts`


Embed = Callable[[Sequence[str]], np.ndarray]


class Scores(NamedTuple):
    accuracy: float
    macro_f1: float
    recall: dict  # class (as text) -> recall on TEST


def scores(test_y, pred) -> Scores:
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    classes = list(dict.fromkeys(test_y))
    recall = recall_score(test_y, pred, labels=classes, average=None, zero_division=0)
    return Scores(
        float(accuracy_score(test_y, pred)),
        float(f1_score(test_y, pred, average="macro")),
        {str(c): round(float(r), 6) for c, r in zip(classes, recall)},
    )


def _weighted_rows(x, examples: list[Example]):
    """A soft target becomes two rows weighted λ and 1−λ (times the row's own weight)."""
    rows, labels, weights = [], [], []
    for i, e in enumerate(examples):
        for label, w in ((e.label_a, e.lam), (e.label_b, 1 - e.lam)):
            if w > 0:
                rows.append(i)
                labels.append(label)
                weights.append(w * e.weight)
    return x[rows], labels, np.array(weights)


def logreg(examples: list[Example], test: TestSet, encoder, embed: Embed, seed: int = 0) -> Scores:
    """Logistic regression on frozen embeddings."""
    from sklearn.linear_model import LogisticRegression

    lam = np.array([e.lam for e in examples])[:, None]
    x = lam * embed([e.text_a for e in examples]) + (1 - lam) * embed([e.text_b for e in examples])
    x, labels, weights = _weighted_rows(x, examples)
    clf = LogisticRegression(max_iter=2000, C=10.0, random_state=0)
    clf.fit(x, labels, sample_weight=weights)
    return scores(test.labels, clf.predict(test.emb))


def tfidf(examples: list[Example], test: TestSet, encoder, embed: Embed, seed: int = 0) -> Scores:
    """TF-IDF (word 1–2-grams, sublinear tf) + logistic regression, fitted on the training rows' texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    vec.fit([e.text_a for e in examples] + [e.text_b for e in examples])
    lam = np.array([e.lam for e in examples])[:, None]
    x = vec.transform([e.text_a for e in examples]).multiply(lam) + vec.transform(
        [e.text_b for e in examples]
    ).multiply(1 - lam)
    x, labels, weights = _weighted_rows(x.tocsr(), examples)
    clf = LogisticRegression(max_iter=2000, C=10.0, random_state=0)
    clf.fit(x, labels, sample_weight=weights)
    return scores(test.labels, clf.predict(vec.transform(test.texts)))


def finetune(
    examples: list[Example],
    test: TestSet,
    encoder,
    embed: Embed,
    seed: int = 0,
    steps: int = FINETUNE_STEPS,
) -> Scores:
    """Fine-tune a copy of the encoder with a linear head for exactly `steps` optimizer steps whatever the
    number of rows: `task.fit`, the same training as `augment --task-model finetune`."""
    from ..training.task import fit

    model = fit(encoder.model, examples, seed, steps)
    return scores(test.labels, model.predict(test.texts))


# Each classifier is named once, in evaluation.config.EVAL_CLASSIFIERS; its code is the function of that name here.
CLASSIFIERS = {name: globals()[name] for name in EVAL_CLASSIFIERS}
