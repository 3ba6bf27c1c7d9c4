"""A hostile or broken checkpoint (or LM folder) is a one-line MixaugError, found before anything is allocated;
paths in a manifest are read against the checkpoint folder, never the CWD."""

import json
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mixaug.inversion.models
from mixaug.errors import MixaugError
from mixaug.inversion.checkpoint import ADAPTOR_FILE, DEFAULT_CHECKPOINT, MANIFEST, Manifest, validate_checkpoint
from mixaug.inversion.invert import DecodeOptions, load_inverter
from mixaug.inversion.models import DEFAULT_ENCODER, DEFAULT_LM, load_encoder, load_lm, resolve_encoder, resolve_lm

EMB = np.random.default_rng(0).normal(size=(2, 384)).astype(np.float32)
LORA_CONFIG = Path("lora") / "adapter_config.json"
LORA_WEIGHTS = Path("lora") / "adapter_model.safetensors"


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ck"
    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _rewrite_header(path: Path, change) -> None:
    """Let `change` edit a safetensors header in place; the data bytes stay as they were."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    change(header)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])


@pytest.fixture
def no_allocation(monkeypatch):
    """Fail the test if anything would build a layer or load a model: refusal must come first."""

    def boom(*args, **kwargs):
        raise AssertionError("allocated before the checkpoint was validated")

    monkeypatch.setattr(torch.nn.Linear, "__init__", boom)
    monkeypatch.setattr(mixaug.inversion.models, "load_lm", boom)
    monkeypatch.setattr(mixaug.inversion.models, "load_encoder", boom)


def _refused(ck: Path, *expected: str) -> str:
    """load_inverter must refuse ck quickly with one line naming the folder and each expected piece."""
    start = time.perf_counter()
    with pytest.raises(MixaugError) as err:
        load_inverter(ck)
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert "\n" not in message and str(ck) in message, message
    for piece in expected:
        assert piece in message, message
    with pytest.raises(MixaugError):  # the up-front check the CLI runs says the same
        validate_checkpoint(ck)
    return message


# -- valid checkpoints still pass ------------------------------------------------------------------


def test_tiny_checkpoints_validate_from_headers_and_still_decode(tiny_checkpoint, tiny_lora_checkpoint, monkeypatch):
    import safetensors.torch

    with monkeypatch.context() as m:  # validation reads headers only, never a tensor
        m.setattr(safetensors.torch, "load_file", lambda *a, **k: pytest.fail("loaded tensors"))
        for folder in (tiny_checkpoint, tiny_lora_checkpoint, DEFAULT_CHECKPOINT):
            assert isinstance(validate_checkpoint(folder), Manifest)
    for folder in (tiny_checkpoint, tiny_lora_checkpoint):
        texts = load_inverter(folder).decode(EMB, options=DecodeOptions(max_new_tokens=4))
        assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


# -- the manifest ------------------------------------------------------------------------------------


def test_huge_hidden_dim_is_refused_before_allocation(tiny_checkpoint, tmp_path, no_allocation):
    ck = _copy(tiny_checkpoint, tmp_path)
    _edit_json(ck / MANIFEST, hidden_dim=1048576)
    _refused(ck, "'hidden_dim'", "1048576")


def test_in_range_dims_that_disagree_with_the_weights_are_refused_before_allocation(
    tiny_checkpoint, tmp_path, no_allocation
):
    ck = _copy(tiny_checkpoint, tmp_path)
    _edit_json(ck / MANIFEST, hidden_dim=65536, num_soft_tokens=512)
    _refused(ck, "does not match the manifest", "hidden_dim=65536")


@pytest.mark.parametrize("text", ["[]", "null", '"a string"', "42", "[" * 100_000, "1" * 5000])
def test_manifest_that_is_not_an_object(tiny_checkpoint, tmp_path, no_allocation, text):
    ck = _copy(tiny_checkpoint, tmp_path)
    (ck / MANIFEST).write_text(text)
    _refused(ck, "manifest.json")


@pytest.mark.parametrize(
    "field, value",
    [
        ("hidden_dim", "32"),
        ("hidden_dim", -1),
        ("hidden_dim", 0),
        ("hidden_dim", 32.0),
        ("hidden_dim", True),
        ("hidden_dim", None),
        ("encoder_dim", "384"),
        ("encoder_dim", 10**30),
        ("lm_hidden_size", -64),
        ("num_soft_tokens", 513),
        ("num_soft_tokens", False),
        ("encoder", 5),
        ("encoder", []),
        ("encoder", ""),
        ("lm", {"a": 1}),
        ("lm", None),
        ("lm", "a\nb"),
        ("lm_weights_sha256", 5),
        ("normalize", "yes"),
        ("normalize", 1),
        ("prompt_template", 5),
        ("prompt_template", "no slot here"),
        ("prompt_template", "{soft}{soft}"),
        ("lora", "yes"),
        ("lora", []),
        ("lora", {"r": "2", "alpha": 4, "target_modules": ["q_proj"]}),
        ("lora", {"r": True, "alpha": 4, "target_modules": ["q_proj"]}),
        ("lora", {"r": 1000000, "alpha": 4, "target_modules": ["q_proj"]}),
        ("lora", {"r": 2, "alpha": "4", "target_modules": ["q_proj"]}),
        ("lora", {"r": 2, "alpha": 4, "target_modules": []}),
        ("lora", {"r": 2, "alpha": 4, "target_modules": "q_proj"}),
        ("lora", {"r": 2, "alpha": 4}),
        ("training", []),
        ("format_version", "1"),
    ],
)
def test_manifest_field_of_wrong_type_or_range(tiny_checkpoint, tmp_path, no_allocation, field, value):
    ck = _copy(tiny_checkpoint, tmp_path)
    _edit_json(ck / MANIFEST, **{field: value})
    _refused(ck, f"'{field}", "manifest.json")


def test_newer_format_asks_for_an_upgrade(tiny_checkpoint, tmp_path, no_allocation):
    ck = _copy(tiny_checkpoint, tmp_path)
    _edit_json(ck / MANIFEST, format_version=2)
    _refused(ck, "upgrade mixaug")


# -- the LoRA config ------------------------------------------------------------------------------------


def test_huge_lora_r_is_refused_before_allocation(tiny_lora_checkpoint, tmp_path, no_allocation):
    ck = _copy(tiny_lora_checkpoint, tmp_path)
    _edit_json(ck / LORA_CONFIG, r=1000000)
    _refused(ck, "adapter_config.json", "'r'", "1000000")


@pytest.mark.parametrize(
    "field, value",
    [
        ("r", "2"),
        ("r", -1),
        ("r", True),
        ("r", 4),
        ("lora_alpha", "x"),
        ("target_modules", []),
        ("target_modules", 5),
        ("rank_pattern", {"q_proj": 1000000}),
        ("layer_replication", [[0, 1000000]]),
        ("init_lora_weights", "pissa"),
        ("peft_type", "IA3"),
    ],
)
def test_lora_config_of_wrong_type_or_range(tiny_lora_checkpoint, tmp_path, no_allocation, field, value):
    ck = _copy(tiny_lora_checkpoint, tmp_path)
    _edit_json(ck / LORA_CONFIG, **{field: value})
    _refused(ck, "adapter_config.json", f"'{field}'")


@pytest.mark.parametrize("text", ["[]", "null", "{not json"])
def test_lora_config_that_is_not_an_object(tiny_lora_checkpoint, tmp_path, no_allocation, text):
    ck = _copy(tiny_lora_checkpoint, tmp_path)
    (ck / LORA_CONFIG).write_text(text)
    _refused(ck, "adapter_config.json")


def test_lora_rank_agreed_by_configs_but_not_by_tensors(tiny_lora_checkpoint, tmp_path, no_allocation):
    ck = _copy(tiny_lora_checkpoint, tmp_path)
    _edit_json(ck / LORA_CONFIG, r=4)
    _edit_json(ck / MANIFEST, lora={"r": 4, "alpha": 4, "target_modules": ["q_proj", "v_proj"]})
    _refused(ck, "adapter_model.safetensors", "r=4")


def test_missing_lora_files(tiny_lora_checkpoint, tmp_path, no_allocation):
    ck = _copy(tiny_lora_checkpoint, tmp_path)
    (ck / LORA_CONFIG).unlink()
    _refused(ck, "adapter_config.json")


# -- the safetensors headers -------------------------------------------------------------------------------


def _set(name: str, key: str, value):
    def change(header):
        header[name][key] = value

    return change


@pytest.mark.parametrize(
    "change, expected",
    [
        (_set("net.0.weight", "dtype", "I64"), "dtype"),
        (_set("net.0.weight", "dtype", ["F32"]), "dtype"),
        (_set("net.0.weight", "shape", [-1, 384]), "shape"),
        (_set("net.0.weight", "shape", [1048576, 384]), "bytes of F32"),
        (_set("net.0.weight", "data_offsets", [0, 2**62]), "data_offsets"),
        (_set("net.0.weight", "data_offsets", "x"), "data_offsets"),
        (lambda h: h.pop("net.2.bias"), "does not match the manifest"),
        (lambda h: h.update({"net.0.weight": 5}), "net.0.weight"),
    ],
)
def test_adaptor_header_checked_against_file_and_manifest(tiny_checkpoint, tmp_path, no_allocation, change, expected):
    ck = _copy(tiny_checkpoint, tmp_path)
    _rewrite_header(ck / ADAPTOR_FILE, change)
    _refused(ck, ADAPTOR_FILE, expected)


@pytest.mark.parametrize("head", [struct.pack("<Q", 2**63), struct.pack("<Q", 4) + b"[1] ", b"\x01\x02"])
def test_adaptor_header_length_or_json_is_bad(tiny_checkpoint, tmp_path, no_allocation, head):
    ck = _copy(tiny_checkpoint, tmp_path)
    (ck / ADAPTOR_FILE).write_bytes(head + b"\x00" * 64)
    _refused(ck, ADAPTOR_FILE)


def test_lora_header_with_huge_tensor(tiny_lora_checkpoint, tmp_path, no_allocation):
    ck = _copy(tiny_lora_checkpoint, tmp_path)

    def change(header):
        name = next(k for k in header if "lora_A" in k)
        header[name]["shape"] = [1000000, 64]

    _rewrite_header(ck / LORA_WEIGHTS, change)
    _refused(ck, "adapter_model.safetensors")


# -- paths in a manifest -----------------------------------------------------------------------------------


def test_relative_lm_path_is_read_against_the_checkpoint_folder(tiny_checkpoint, tiny_lm_dir, tmp_path, monkeypatch):
    ck = _copy(tiny_checkpoint, tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "lm").symlink_to(tiny_lm_dir, target_is_directory=True)
    _edit_json(ck / MANIFEST, lm="../models/lm")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert resolve_lm("../models/lm", base=ck) == ck / "../models/lm"
    assert len(load_inverter(ck).decode(EMB, options=DecodeOptions(max_new_tokens=2))) == 2
    monkeypatch.chdir(tmp_path)  # a relative checkpoint folder: its manifest's paths are relative to it
    assert len(load_inverter("ck").decode(EMB[:1], options=DecodeOptions(max_new_tokens=2))) == 1


def test_relative_path_is_never_taken_from_the_cwd(tiny_checkpoint, tiny_lm_dir, tmp_path, monkeypatch):
    ck = _copy(tiny_checkpoint, tmp_path)
    _edit_json(ck / MANIFEST, lm="tiny-lm", encoder="enc")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "tiny-lm").symlink_to(tiny_lm_dir, target_is_directory=True)
    (cwd / "enc").mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(MixaugError, match=r"LM 'tiny-lm' not found offline \(not under checkpoint"):
        load_inverter(ck)
    with pytest.raises(MixaugError, match="encoder 'enc' not found offline"):
        resolve_encoder("enc", base=ck)
    assert resolve_lm("tiny-lm") == Path("tiny-lm")  # a user's own path (no base) is still read against the CWD
    assert resolve_encoder("enc") == Path("enc")
    (ck / "enc").mkdir()
    assert resolve_encoder("enc", base=ck) == ck / "enc"


def test_aliases_and_absolute_paths_still_resolve_with_a_base(tiny_checkpoint, tiny_lm_dir, monkeypatch):
    monkeypatch.setattr(
        mixaug.inversion.models, "_convert_gguf", lambda gguf: Path("converted")
    )  # no real SmolLM2 here
    assert resolve_lm(DEFAULT_LM, base=tiny_checkpoint) == Path("converted")
    assert resolve_encoder(DEFAULT_ENCODER, base=tiny_checkpoint).is_dir()
    assert resolve_lm(str(tiny_lm_dir), base=tiny_checkpoint) == tiny_lm_dir


# -- model folders that cannot be loaded -----------------------------------------------------------------


def _lm_copy(tiny_lm_dir: Path, dest: Path, skip=()) -> Path:
    dest.mkdir()
    for f in tiny_lm_dir.iterdir():
        if f.name not in skip:
            (dest / f.name).symlink_to(f)
    return dest


def test_lm_folder_without_tokenizer(tiny_lm_dir, tmp_path):
    lm = _lm_copy(
        tiny_lm_dir,
        tmp_path / "lm",
        skip={
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.json",
            "merges.txt",
            "special_tokens_map.json",
            "chat_template.jinja",
        },
    )
    with pytest.raises(MixaugError, match=f"cannot load LM from {lm}: no tokenizer") as err:
        load_lm(str(lm))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("config", ["{broken", "[]", '{"model_type": "llama", "hidden_size": "x"}', "{}"])
def test_lm_folder_with_broken_config(tiny_lm_dir, tmp_path, config):
    lm = _lm_copy(tiny_lm_dir, tmp_path / "lm", skip={"config.json"})
    (lm / "config.json").write_text(config)
    with pytest.raises(MixaugError, match=f"cannot load LM from {lm}") as err:
        load_lm(str(lm))
    assert "\n" not in str(err.value)


def test_lm_folder_with_broken_tokenizer(tiny_lm_dir, tmp_path):
    lm = _lm_copy(tiny_lm_dir, tmp_path / "lm", skip={"tokenizer.json", "tokenizer_config.json"})
    (lm / "tokenizer.json").write_text("{broken")
    (lm / "tokenizer_config.json").write_text('{"tokenizer_class": 5}')
    with pytest.raises(MixaugError, match=f"cannot load LM from {lm}") as err:
        load_lm(str(lm))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("files", [{}, {"config.json": "{broken", "modules.json": "[{]"}])
def test_broken_encoder_folder(tmp_path, files):
    enc = tmp_path / "enc"
    enc.mkdir()
    for name, text in files.items():
        (enc / name).write_text(text)
    with pytest.raises(MixaugError, match=f"cannot load encoder from {enc}") as err:
        load_encoder(str(enc))
    assert "\n" not in str(err.value)


def test_train_lm_flag_is_read_against_the_cwd_and_recorded_absolute(tiny_lm_dir, tmp_path, monkeypatch):
    from mixaug.training.train import TrainConfig, train

    (tmp_path / "lm").symlink_to(tiny_lm_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(
        out="run",
        lm="lm",
        num_soft_tokens=2,
        hidden_dim=32,
        lora_r=0,
        max_steps=1,
        train_batch=4,
        warmup_steps=1,
        eval_every=1000,
        eval_size=2,
        save_every=5,
        log_every=1,
    )
    texts = [
        "The cat sat on the mat.",
        "A dog barked at the mailman.",
        "Rain is expected tomorrow.",
        "The train leaves at noon.",
        "We walked along the river.",
    ]
    ck = train(cfg, texts=texts, progress=False, log=lambda m: None).resolve()
    assert validate_checkpoint(ck).lm == str(tmp_path / "lm")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "lm").mkdir(parents=True)  # an "lm" the recorded path must not be read against
    monkeypatch.chdir(elsewhere)
    from transformers import AutoModelForCausalLM

    lm = load_inverter(ck).lm  # the LM trained against, found from any folder (its weights hash checked too)
    tiny = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    assert (lm.config.num_hidden_layers, lm.config.hidden_size) == (2, 64)
    assert torch.equal(lm.get_input_embeddings().weight, tiny.get_input_embeddings().weight)
