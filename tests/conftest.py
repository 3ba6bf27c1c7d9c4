"""Fixtures: a tiny randomly initialised LM (real SmolLM2 tokenizer, 2 layers) + the real MiniLM encoder,
and tiny checkpoints built from them. Nothing here touches the network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MIXAUG_CACHE", os.environ.get("MIXAUG_TEST_CACHE", str(ROOT / "build" / "test-cache")))
os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A 2-layer, 64-wide Llama with SmolLM2's tokenizer, saved as a plain HF folder."""
    import warnings

    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from mixaug.inversion.models import _default_gguf

    gguf = _default_gguf()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny-lm")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def make_checkpoint(folder: Path, lm_dir: Path, seed: int = 0, lora: bool = False) -> Path:
    from mixaug.inversion.checkpoint import Adaptor, Manifest, save_checkpoint
    from mixaug.inversion.invert import attach_lora
    from mixaug.inversion.models import DEFAULT_ENCODER, load_lm, weights_sha256

    lm, _, _ = load_lm(str(lm_dir))
    manifest = Manifest(
        encoder=DEFAULT_ENCODER,
        encoder_dim=384,
        normalize=True,
        lm=str(lm_dir),
        lm_weights_sha256=weights_sha256(lm),
        lm_hidden_size=64,
        num_soft_tokens=2,
        hidden_dim=32,
        lora={"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]} if lora else None,
    )
    torch.manual_seed(seed)
    adaptor = Adaptor.from_manifest(manifest)
    peft_lm = attach_lora(lm, manifest) if lora else None
    return save_checkpoint(folder, manifest, adaptor, peft_lm)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_lm_dir) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", tiny_lm_dir)


@pytest.fixture(scope="session")
def tiny_lora_checkpoint(tmp_path_factory, tiny_lm_dir) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt-lora") / "tiny-lora", tiny_lm_dir, seed=1, lora=True)


@pytest.fixture
def sample_rows() -> list[dict]:
    rows = [json.loads(l) for l in (ROOT / "examples" / "intents.jsonl").read_text().splitlines()]
    return rows[:6] + rows[10:16] + rows[20:26]  # 3 classes x 6


@pytest.fixture
def sample_file(tmp_path, sample_rows) -> Path:
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in sample_rows))
    return p
