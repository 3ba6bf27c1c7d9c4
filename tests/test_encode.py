"""The real MiniLM encoder: embeddings do not depend on batching, and the memo changes nothing but speed."""

import numpy as np
import pytest

from mixaug.encode import load_encoder

TEXTS = [
    "how far is the moon?",
    "a short one",
    "the film drags in its second hour, but the cast is good",
    "how far is the moon?",
    "ok",
    "What does NASA stand for ?",
]


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(None, "cpu")


def test_embeddings_do_not_depend_on_batch_size(encoder):
    ref = encoder.encode(TEXTS, batch_size=32)
    for bs in (1, 2, 5):
        assert np.array_equal(encoder.encode(TEXTS, batch_size=bs), ref)
    assert np.allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-5)


def test_memo_is_exact_and_dropped_on_exit(encoder):
    ref = encoder.encode(TEXTS)
    seen = []
    with encoder.memoize():
        first = encoder.encode(TEXTS[:3])
        again = encoder.encode(TEXTS, on_batch=seen.append)
        assert len(encoder.memo) == 5  # distinct texts only
        assert encoder.encode([]).shape == (0, encoder.dim)
    assert np.array_equal(first, ref[:3]) and np.array_equal(again, ref)
    assert sum(seen) == len(TEXTS)  # progress still counts every row
    assert encoder.memo is None
