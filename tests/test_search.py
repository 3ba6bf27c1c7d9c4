"""Encoder-guided search (mixaug/search.py) on the tiny stack: deterministic, batch-invariant, and its
reported cosine is the re-encoded sentence's."""

import numpy as np
import pandas as pd
import pytest

from mixaug import stacks
from mixaug.inversion.decode import DecodeOptions


@pytest.fixture
def stack(tiny_checkpoint):
    from mixaug.stacks import load_stack

    return load_stack(tiny_checkpoint, "cpu")


def _targets(stack, sample_rows, n=5):
    return stack.encoder.encode([r["text"] for r in sample_rows[:n]])


def test_continuation_of_nothing_is_the_decode(stack, sample_rows):
    emb = _targets(stack, sample_rows)
    opts = DecodeOptions(max_new_tokens=6)
    first = stack.inverter.continue_tokens(emb, [[]] * len(emb), [0] * len(emb), opts, batch_size=3)
    texts = stack.inverter.decode(emb, options=opts, batch_size=3)
    assert [stack.inverter.detokenize(t) for t in first] == texts
    longer = stack.inverter.continue_tokens(emb[:2], [first[0], first[1]], [0, 0], DecodeOptions(max_new_tokens=3))
    assert all(len(t) <= 3 for t in longer)


def test_guided_search_is_deterministic_and_batch_invariant(stack, sample_rows):
    from mixaug.encode import cosine_rows
    from mixaug.inversion.search import guided_decode

    emb = _targets(stack, sample_rows)
    opts = DecodeOptions(max_new_tokens=8)
    texts, cos = guided_decode(stack.inverter, stack.encoder.encode, emb, [1, 2, 3, 4, 5], opts, width=3, batch_size=4)
    again, _ = guided_decode(stack.inverter, stack.encoder.encode, emb, [1, 2, 3, 4, 5], opts, width=3, batch_size=7)
    assert again == texts and len(texts) == 5
    assert np.allclose(cos, cosine_rows(stack.encoder.encode(texts), emb), atol=1e-5)  # the sentence it returns
    one, _ = guided_decode(stack.inverter, stack.encoder.encode, emb[2:3], [3], opts, width=3, batch_size=4)
    assert one == texts[2:3]  # a row's result does not depend on the other rows


def test_augment_with_guided_search(tiny_checkpoint, sample_rows, monkeypatch):
    from mixaug.pipeline import augment

    monkeypatch.setenv("MIXAUG_NO_DECODE_CACHE", "1")
    monkeypatch.setattr(stacks, "_STACKS", {})  # stacks loaded without a disk cache must not outlive the test
    df = pd.DataFrame(sample_rows)
    opts = dict(checkpoint=str(tiny_checkpoint), num_augmented=4, max_new_tokens=8, only_new=True)
    out = augment(df, search="guided", search_width=2, **opts)
    assert len(out) == out.attrs["mixaug_stats"]["new_rows"]
    assert (out["mixaug_fidelity"] >= -1).all()
