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
    steps = []
    real = torch.optim.AdamW.step

    def counting(self, *args, **kwargs):
        steps.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting)
    for rows in (ROWS, ROWS * 5):
        steps.clear()
        acc = finetune(plain(rows), TEST, encoder, None, steps=4).accuracy
        assert len(steps) == 4 and 0 <= acc <= 1
