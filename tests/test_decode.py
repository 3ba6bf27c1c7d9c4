"""The decode engine: continuous batching gives each row exactly what a static batch gives it, the tensor
n-gram ban is the per-row rule, no forward pass is spent on a finished row, and int8 keeps every row
independent of its batch."""

import importlib
import random

import numpy as np
import pytest
import torch

from mixaug import config
from mixaug.errors import MixaugError, MixaugWarning
from mixaug.inversion import calibration, decode
from mixaug.inversion.decode import DecodeOptions, DecodeStats, LlamaWeights, SlotLlama, ban_repeated_ngrams
from mixaug.inversion.invert import Inverter, load_inverter
from mixaug.inversion.quantize import Int8Linear, smoothing

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


def test_int8_linear_is_close_and_exactly_row_independent():
    torch.manual_seed(0)
    weight = torch.randn(48, 32)
    layer = Int8Linear(weight)
    x = torch.randn(9, 32) * torch.logspace(-3, 3, 9)[:, None]  # rows of very different sizes
    y = layer(x)
    ref = x @ weight.T
    assert ((y - ref).norm(dim=1) / ref.norm(dim=1)).max() < 0.03
    for i in range(len(x)):
        assert torch.equal(layer(x[i : i + 1])[0], y[i])
    assert torch.equal(layer(x[:4].reshape(2, 2, 32)).reshape(4, 48), y[:4])  # any leading shape


def test_smoothing_rescues_the_rows_an_outlier_channel_would_flatten():
    """One activation channel 1000x the others: on its own it sets each row's int8 scale and the other
    channels round to zero; with SmoothQuant's scales (measured on those activations) they survive."""
    torch.manual_seed(1)
    weight = torch.randn(64, 96) * 0.05
    x = torch.randn(20, 96)
    x[:, 7] *= 1000
    ref = x @ weight.T
    rest = x.clone()
    rest[:, 7] = 0
    rest_ref = rest @ weight.T  # what the other 95 channels contribute

    def error(layer):
        return ((layer(x) - ref).norm() / rest_ref.norm()).item()

    plain, calibrated = Int8Linear(weight), Int8Linear(weight, x.abs().amax(dim=0))
    assert error(calibrated) < 0.5 * error(plain)
    assert 7 in calibrated.outliers.tolist()  # the outlier channel bypasses int8
    s = smoothing(weight, x.abs().amax(dim=0))
    assert torch.allclose((x / s) @ (weight * s).T, ref, rtol=1e-4, atol=1e-3)  # the same product, exactly
    unseen = smoothing(weight, torch.zeros(96))
    assert torch.equal(unseen, torch.ones(96))  # a channel calibration never saw is left alone


def test_int8_calibration_sees_every_projection_and_uses_no_deprecated_api(tiny_checkpoint):
    import warnings

    inv = load_inverter(tiny_checkpoint, precision="int8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's deprecated quantized tensor types warn when touched
        weights = inv._engine_weights()
    act_max = decode.calibrate(inv.lm, inv._calibration_inputs())
    layers = inv.lm.config.num_hidden_layers
    assert set(act_max) == {(i, kind) for i in range(layers) for kind in ("qkv", "o", "gate_up", "down")}
    assert all(bool((m > 0).any()) for m in act_max.values())
    assert all(isinstance(f, Int8Linear) for layer in weights.layers for f in layer[1:])
    assert all(f.inv_smooth is not None for layer in weights.layers for f in layer[1:])


def test_int8_is_calibrated_on_the_soft_prompts_the_decoder_reads(tiny_checkpoint):
    from mixaug.encode import load_encoder
    from mixaug.inversion.quantize import CALIBRATION_TEXTS

    inv = load_inverter(tiny_checkpoint, precision="int8")
    m = inv.manifest
    emb = load_encoder(m.encoder, "cpu", m.normalize, base=tiny_checkpoint).encode(list(CALIBRATION_TEXTS))
    inputs = inv._calibration_inputs()
    start = len(inv.prefix_ids)
    for x, soft in zip(inputs, inv.soft_prompts(emb)):  # the soft vectors sit where the decoder reads them
        assert torch.equal(x[start : start + len(soft)], soft)
    bare = Inverter(m, inv.adaptor, inv.lm, inv.tokenizer, precision="int8")  # no encoder to calibrate with
    with pytest.raises(MixaugError, match="encoder"):
        bare._engine_weights()


def test_int8_warm_start_reads_the_calibration_and_decodes_the_same_bytes(tiny_checkpoint, tmp_path, monkeypatch):
    """The first int8 load measures and keeps its calibration; the next reads it (no fp32 pass) and decodes
    exactly what a cold start decodes; a damaged, foreign or wrong-shaped file is measured again."""
    from safetensors.torch import save_file

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    opts = DecodeOptions(max_new_tokens=8)
    cold = load_inverter(tiny_checkpoint, precision="int8")
    cal = cold.calibration_cache
    path = cal.path
    assert path.parent == tmp_path / "cache" / "int8" and not path.exists()
    cold_rows = cold.decode(EMB, options=opts)
    assert path.is_file()
    measured = decode.calibrate(cold.lm, cold._calibration_inputs())

    def no_pass(*args):
        raise AssertionError("a warm start must not run the calibration pass")

    monkeypatch.setattr(
        importlib.import_module("mixaug.inversion.invert"), "calibrate", no_pass
    )  # mixaug.inversion.invert: a function
    warm = load_inverter(tiny_checkpoint, precision="int8")
    assert warm.decode(EMB, options=opts) == cold_rows
    monkeypatch.undo()
    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))

    key = next(iter(measured))
    bad_files = {
        "garbage": b"not safetensors at all",
        "missing layer": {f"{i}.{k}": t for (i, k), t in measured.items() if (i, k) != key},
        "wrong shape": {f"{i}.{k}": t[:-1] if (i, k) == key else t for (i, k), t in measured.items()},
        "negative": {f"{i}.{k}": -t if (i, k) == key else t for (i, k), t in measured.items()},
        "nan": {f"{i}.{k}": t * float("nan") if (i, k) == key else t for (i, k), t in measured.items()},
    }
    for name, content in bad_files.items():
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            save_file(content, str(path), metadata=cal.source)  # made from this checkpoint: only the tensors are bad
        again = load_inverter(tiny_checkpoint, precision="int8")
        assert again.decode(EMB, options=opts) == cold_rows, name
        assert all(torch.equal(t, measured[k]) for k, t in calibration.load(cal, again.lm).items()), name


def test_int8_calibration_cache_that_cannot_be_written_costs_a_warning_only(tiny_checkpoint, tmp_path, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MIXAUG_CACHE", str(blocker))
    inv = load_inverter(tiny_checkpoint, precision="int8")
    with pytest.warns(MixaugWarning, match="calibration cache"):
        rows = inv.decode(EMB[:2], options=DecodeOptions(max_new_tokens=4))
    assert len(rows) == 2


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
