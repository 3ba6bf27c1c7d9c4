"""The eval classifiers: the same rows reach each one; the fine-tune is fair (fixed optimizer steps)."""

import numpy as np
import pytest
import torch

from mixaug.encode import load_encoder
from mixaug.evaluation.classifiers import Example, TestSet, finetune, logreg, tfidf

ROWS = [("great fun film", "pos"), ("a great cast", "pos"), ("dull and slow", "neg"), ("slow dull plot", "neg")]
TEST = TestSet(["great film", "dull plot"], ["pos", "neg"], np.eye(2, 8, dtype=np.float32))


def plain(rows):
    return [Example(t, t, 1.0, y, y) for t, y in rows]


def test_tfidf_learns_words_and_takes_soft_rows():
    assert tfidf(plain(ROWS), TEST, None, None)[:2] == (1.0, 1.0)
    mixed = plain(ROWS) + [Example("great fun film", "dull and slow", 0.7, "pos", "neg")]
    assert tfidf(mixed, TEST, None, None)[0] == 1.0


def test_logreg_uses_the_embed_function():
    vec = {"great fun film": 0, "a great cast": 0, "dull and slow": 1, "slow dull plot": 1}

    def embed(texts):
        return np.eye(2, 8, dtype=np.float32)[[vec[t] for t in texts]]

    assert logreg(plain(ROWS), TEST, None, embed)[:2] == (1.0, 1.0)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(None, "cpu")  # the real MiniLM (offline, from its PyPI package)


def test_finetune_takes_the_same_number_of_steps_whatever_the_rows(monkeypatch, encoder):
    """4 optimizer steps for 4 rows and for 20, and the scores are those of the model those steps fitted."""
    from mixaug.training import task

    steps, fitted = [], []
    real_step, real_fit = torch.optim.AdamW.step, task.fit

    def counting(self, *args, **kwargs):
        steps.append(1)
        return real_step(self, *args, **kwargs)

    def keeping(*args, **kwargs):
        fitted.append(real_fit(*args, **kwargs))
        return fitted[-1]

    monkeypatch.setattr(torch.optim.AdamW, "step", counting)
    monkeypatch.setattr(task, "fit", keeping)
    for rows in (ROWS, ROWS * 5):
        steps.clear()
        got = finetune(plain(rows), TEST, encoder, None, steps=4)
        assert len(steps) == 4
        pred = fitted[-1].predict(TEST.texts)  # scored independently: the fitted model's own predictions
        hits = [p == y for p, y in zip(pred, TEST.labels)]
        assert got.accuracy == sum(hits) / len(hits)
        assert got.recall == {y: float(h) for y, h in zip(TEST.labels, hits)}  # one TEST row per class
