import json
import shutil

import numpy as np
import pytest
import torch

from mixaug.errors import MixaugError
from mixaug.inversion.checkpoint import ADAPTOR_FILE, MANIFEST, export_checkpoint, read_manifest
from mixaug.inversion.invert import DecodeOptions, load_inverter

EMB = np.random.default_rng(0).normal(size=(7, 384)).astype(np.float32)


def test_greedy_decoding_is_batch_size_invariant(tiny_checkpoint):
    inv = load_inverter(tiny_checkpoint)
    opts = DecodeOptions(max_new_tokens=8)
    ref = inv.decode(EMB, options=opts, batch_size=7)
    assert all(isinstance(t, str) for t in ref) and any(ref)
    assert inv.decode(EMB, options=opts, batch_size=1) == ref
    assert inv.decode(EMB, options=opts, batch_size=3) == ref


def test_sampling_depends_on_row_seed_not_batch(tiny_checkpoint):
    inv = load_inverter(tiny_checkpoint)
    opts = DecodeOptions(max_new_tokens=8, temperature=1.0, top_p=0.95)
    seeds = list(range(7))
    ref = inv.decode(EMB, seeds=seeds, options=opts, batch_size=7)
    for batch_size in (1, 2, 3, 5):  # odd sizes and 1 take other matmul kernels: the draw must not notice
        assert inv.decode(EMB, seeds=seeds, options=opts, batch_size=batch_size) == ref
    assert inv.decode(EMB, seeds=[s + 100 for s in seeds], options=opts, batch_size=7) != ref
    flat = DecodeOptions(max_new_tokens=16, temperature=5.0)  # near-uniform over 49k tokens: the hardest case
    many = np.random.default_rng(1).normal(size=(12, 384)).astype(np.float32)
    assert inv.decode(many, seeds=range(12), options=flat, batch_size=1) == inv.decode(
        many, seeds=range(12), options=flat, batch_size=12
    )


def test_lora_checkpoint_loads_and_decodes(tiny_lora_checkpoint):
    inv = load_inverter(tiny_lora_checkpoint)
    assert len(inv.decode(EMB[:2], options=DecodeOptions(max_new_tokens=4))) == 2


def test_manifest_is_readable_json(tiny_checkpoint):
    data = json.loads((tiny_checkpoint / MANIFEST).read_text())
    assert data["adaptor"] == {"input_dim": 384, "hidden_dim": 32, "num_soft_tokens": 2, "output_dim": 64}
    assert data["encoder"].endswith("all-MiniLM-L6-v2") and len(data["lm_weights_sha256"]) == 64


def _copy(src, tmp_path):
    dst = tmp_path / "ck"
    shutil.copytree(src, dst)
    return dst


def test_corrupt_manifest(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path)
    (ck / MANIFEST).write_text("{not json")
    with pytest.raises(MixaugError, match="corrupt checkpoint.*not JSON"):
        load_inverter(ck)


def test_corrupt_weights(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path)
    (ck / ADAPTOR_FILE).write_bytes(b"\x00" * 64)
    with pytest.raises(MixaugError, match="corrupt checkpoint.*adaptor.safetensors"):
        load_inverter(ck)


def test_shape_mismatch(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path)
    data = json.loads((ck / MANIFEST).read_text())
    data["hidden_dim"] = 48
    (ck / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(MixaugError, match="does not match the manifest"):
        load_inverter(ck)


def test_mismatched_lm_is_refused(tiny_checkpoint, tmp_path):
    ck = _copy(tiny_checkpoint, tmp_path)
    data = json.loads((ck / MANIFEST).read_text())
    data["lm_weights_sha256"] = "0" * 64
    (ck / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(MixaugError, match="does not match checkpoint"):
        load_inverter(ck)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(MixaugError, match="checkpoint not found"):
        read_manifest(tmp_path / "nope")


def test_export_fp16_halves_size_and_keeps_outputs_close(tiny_lora_checkpoint, tmp_path):
    out = export_checkpoint(tiny_lora_checkpoint, tmp_path / "fp16", torch.float16)
    for folder in (tiny_lora_checkpoint, out):  # readable and portable: no blank model card, no local base path
        assert not (folder / "lora" / "README.md").exists()
        lora_config = json.loads((folder / "lora" / "adapter_config.json").read_text())
        assert lora_config["base_model_name_or_path"] == read_manifest(folder).lm
        assert lora_config["target_modules"] == sorted(lora_config["target_modules"])  # not set order
    assert (out / ADAPTOR_FILE).stat().st_size < 0.6 * (tiny_lora_checkpoint / ADAPTOR_FILE).stat().st_size
    a = load_inverter(tiny_lora_checkpoint).soft_prompts(EMB[:2])
    b = load_inverter(out).soft_prompts(EMB[:2])
    assert torch.allclose(a, b, atol=1e-2)
