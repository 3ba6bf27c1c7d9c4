"""The decode engine: continuous batching gives each row exactly what a static batch gives it, the tensor
n-gram ban is the per-row rule, no forward pass is spent on a finished row, and int8 keeps every row
independent of its batch."""

import random

import numpy as np
import pytest
import torch

from mixaug import config, decode
from mixaug.decode import (
    DecodeOptions,
    DecodeStats,
    LlamaWeights,
    RowInt8Linear,
    SlotLlama,
    ban_repeated_ngrams,
)
from mixaug.errors import MixaugError
from mixaug.invert import Inverter, load_inverter

EMB = np.random.default_rng(0).normal(size=(11, 384)).astype(np.float32)


def reference_bans(tokens: list[int], n: int) -> set[int]:
    """The rule, spelled out: tokens that would complete an n-gram already in the history."""
    if len(tokens) < n - 1 or n < 2:
        return set()
    last = tuple(tokens[len(tokens) - (n - 1) :])
    return {tokens[j + n - 1] for j in range(len(tokens) - n + 1) if tuple(tokens[j : j + n - 1]) == last}


@pytest.mark.parametrize("n", [2, 3, 4])
def test_tensor_ngram_ban_matches_the_rule(n):
    rng = random.Random(n)
    for _ in range(200):
        rows = [[rng.randrange(4) for _ in range(rng.randrange(0, 14))] for _ in range(rng.randrange(1, 6))]
        width = 16
        history = torch.full((len(rows), width), 99, dtype=torch.long)  # stale values past each length
        for i, toks in enumerate(rows):
            history[i, : len(toks)] = torch.tensor(toks, dtype=torch.long)
        lengths = torch.tensor([len(t) for t in rows])
        logits = torch.zeros(len(rows), 100)
        ban_repeated_ngrams(logits, history, lengths, n)
        for i, toks in enumerate(rows):
            assert set(torch.nonzero(logits[i] == float("-inf")).flatten().tolist()) == reference_bans(toks, n)


def test_slot_forward_matches_the_hf_model(tiny_checkpoint):
    """Rows at different positions in one pass get the logits HF computes for each alone."""
    lm = load_inverter(tiny_checkpoint).lm
    weights = LlamaWeights(lm)
    engine = SlotLlama(weights, slots=4, max_len=12)
    torch.manual_seed(0)
    prompts = torch.randn(3, 5, lm.config.hidden_size) * 0.1
    with torch.inference_mode():
        first = engine.forward(prompts[:2], torch.tensor([2, 0]), torch.zeros(2, dtype=torch.long))
        late = engine.forward(prompts[2:], torch.tensor([3]), torch.zeros(1, dtype=torch.long))
        tokens = torch.tensor([[7], [9], [11]])
        step = engine.forward(lm.get_input_embeddings()(tokens), torch.tensor([2, 0, 3]), torch.tensor([5, 5, 5]))
        for row in range(3):
            ref = lm(inputs_embeds=torch.cat([prompts[row : row + 1], lm.get_input_embeddings()(tokens[row])[None]], 1))
            assert torch.allclose(step[row], ref.logits[0, -1], atol=1e-4)
            assert torch.allclose((first if row < 2 else late)[row if row < 2 else 0], ref.logits[0, -2], atol=1e-4)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_continuous_batching_gives_each_row_its_static_batch_text(tiny_checkpoint, temperature):
    inv = load_inverter(tiny_checkpoint)
    opts = DecodeOptions(max_new_tokens=10, temperature=temperature, top_p=0.9)
    seeds = list(range(len(EMB)))
    static = inv._decode_batch(EMB, seeds, opts)  # HF forward, one batch run to its longest row
    stats = DecodeStats()
    assert inv.decode(EMB, seeds=seeds, options=opts, batch_size=3, stats=stats) == static
    # every forward pass after a prompt feeds a token some row still needs: none is spent on a finished row
    assert stats.slot_steps == stats.tokens - len(EMB)


def test_rows_are_handed_over_as_they_finish(tiny_checkpoint):
    inv = load_inverter(tiny_checkpoint)
    got, counts = {}, []
    texts = inv.decode(EMB, batch_size=4, on_row=lambda i, t: got.__setitem__(i, t), on_batch=counts.append)
    assert got == dict(enumerate(texts)) and sum(counts) == len(EMB)


def test_int8_rows_do_not_depend_on_their_batch(tiny_checkpoint):
    inv = load_inverter(tiny_checkpoint, precision="int8")
    opts = DecodeOptions(max_new_tokens=10)
    ref = inv.decode(EMB, options=opts, batch_size=len(EMB))
    for batch_size in (1, 2, 5):
        assert inv.decode(EMB, options=opts, batch_size=batch_size) == ref
    sampled = DecodeOptions(max_new_tokens=10, temperature=1.0)
    assert inv.decode(EMB, seeds=range(11), options=sampled, batch_size=1) == inv.decode(
        EMB, seeds=range(11), options=sampled, batch_size=4
    )


def test_row_int8_linear_is_close_and_exactly_row_independent():
    torch.manual_seed(0)
    weight = torch.randn(48, 32)
    layer = RowInt8Linear(weight)
    x = torch.randn(9, 32) * torch.logspace(-3, 3, 9)[:, None]  # rows of very different sizes
    y = layer(x)
    ref = x @ weight.T
    assert ((y - ref).norm(dim=1) / ref.norm(dim=1)).max() < 0.03
    for i in range(len(x)):
        assert torch.equal(layer(x[i : i + 1])[0], y[i])


def test_unknown_precision_is_refused(tiny_checkpoint):
    inv = load_inverter(tiny_checkpoint)
    with pytest.raises(MixaugError, match="precision"):
        Inverter(inv.manifest, inv.adaptor, inv.lm, inv.tokenizer, precision="int4")


def test_config_knows_the_engine_precisions():
    assert config.PRECISIONS == ("auto", *decode.PRECISIONS) and config.DEFAULT_PRECISION == "auto"
    assert decode.resolve_precision("auto", "cpu") == "int8" and decode.resolve_precision("auto", "cuda") == "fp32"
    with pytest.raises(MixaugError, match="CPU only"):
        decode.resolve_precision("int8", "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_the_engine_runs_on_cuda_and_stays_batch_invariant(tiny_checkpoint):
    inv = load_inverter(tiny_checkpoint, device="cuda", precision="auto")
    assert inv.precision == "fp32"  # auto = fp32 on a GPU
    opts = DecodeOptions(max_new_tokens=10, temperature=1.0)
    ref = inv.decode(EMB, seeds=range(11), options=opts, batch_size=len(EMB))
    assert all(isinstance(t, str) for t in ref)
    assert inv.decode(EMB, seeds=range(11), options=opts, batch_size=3) == ref
