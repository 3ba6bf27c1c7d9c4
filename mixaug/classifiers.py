"""The downstream classifiers of `mixaug eval`: one function each, the same signature, trained on originals
(+ new rows) and scored on TEST. Every one takes the same `Example` rows, so a method's new rows reach each
classifier the same way.

- `logreg`: logistic regression on frozen encoder embeddings (the setting where new rows can hardly help).
- `tfidf`: TF-IDF word 1–2-grams + logistic regression (the cheap production model).
- `finetune`: the encoder fine-tuned with a linear head for a fixed number of optimizer steps, the same
  for every arm, so augmentation is never credited with extra steps (a fixed number of epochs would give
  an arm with twice the rows twice the steps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

FINETUNE_STEPS = 100  # measured: 100 steps of batch 16 beat the frozen-embedding regression at 10-shot


@dataclass
class Example:
    """One training row: the input is λ·x(a) + (1−λ)·x(b) and the target λ·onehot(label_a) +
    (1−λ)·onehot(label_b). Plain rows have a == b and λ = 1; embed-mixup mixes two texts' features;
    mixaug:soft keeps its readable sentence but a λ-interpolated target."""

    text_a: str
    text_b: str
    lam: float
    label_a: object
    label_b: object


@dataclass
class TestSet:
    texts: list
    labels: list
    emb: np.ndarray  # the encoder's embeddings of `texts`


Embed = Callable[[Sequence[str]], np.ndarray]


def scores(test_y, pred) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return float(accuracy_score(test_y, pred)), float(f1_score(test_y, pred, average="macro"))


def _weighted_rows(x, examples: list[Example]):
    """A soft target becomes two rows weighted λ and 1−λ."""
    rows, labels, weights = [], [], []
    for i, e in enumerate(examples):
        for label, w in ((e.label_a, e.lam), (e.label_b, 1 - e.lam)):
            if w > 0:
                rows.append(i)
                labels.append(label)
                weights.append(w)
    return x[rows], labels, np.array(weights)


def logreg(examples: list[Example], test: TestSet, encoder, embed: Embed, seed: int = 0) -> tuple[float, float]:
    """Logistic regression on frozen embeddings."""
    from sklearn.linear_model import LogisticRegression

    lam = np.array([e.lam for e in examples])[:, None]
    x = lam * embed([e.text_a for e in examples]) + (1 - lam) * embed([e.text_b for e in examples])
    x, labels, weights = _weighted_rows(x, examples)
    clf = LogisticRegression(max_iter=2000, C=10.0, random_state=0)
    clf.fit(x, labels, sample_weight=weights)
    return scores(test.labels, clf.predict(test.emb))


def tfidf(examples: list[Example], test: TestSet, encoder, embed: Embed, seed: int = 0) -> tuple[float, float]:
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
    batch_size: int = 16,
    lr: float = 3e-5,
) -> tuple[float, float]:
    """Fine-tune a copy of the encoder with a linear head (mean-pooled, soft-target cross-entropy) for
    exactly `steps` optimizer steps whatever the number of rows: batches walk seeded permutations."""
    import copy

    import torch

    torch.manual_seed(seed)
    model = copy.deepcopy(encoder.model).train()
    classes = list(dict.fromkeys([e.label_a for e in examples] + [e.label_b for e in examples]))
    index = {c: i for i, c in enumerate(classes)}
    head = torch.nn.Linear(encoder.dim, len(classes))
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(
        [{"params": list(model.parameters()), "lr": lr}, {"params": list(head.parameters()), "lr": 1e-3}]
    )
    rng = np.random.default_rng(seed)

    def pooled(texts):
        return model(model.tokenize(list(texts)))["sentence_embedding"]

    order: list[int] = []
    for _ in range(steps):
        while len(order) < batch_size:
            order += rng.permutation(len(examples)).tolist()
        batch = [examples[i] for i in order[:batch_size]]
        order = order[batch_size:]
        lam = torch.tensor([e.lam for e in batch], dtype=torch.float32)[:, None]
        mixed = lam * pooled([e.text_a for e in batch]) + (1 - lam) * pooled([e.text_b for e in batch])
        target = torch.zeros(len(batch), len(classes))
        for i, e in enumerate(batch):
            target[i, index[e.label_a]] += e.lam
            target[i, index[e.label_b]] += 1 - e.lam
        loss = torch.nn.functional.cross_entropy(head(mixed), target)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    model.eval()
    preds = []
    with torch.inference_mode():
        for start in range(0, len(test.texts), 64):
            preds += head(pooled(test.texts[start : start + 64])).argmax(-1).tolist()
    return scores(test.labels, [classes[i] for i in preds])


CLASSIFIERS = {"logreg": logreg, "tfidf": tfidf, "finetune": finetune}
