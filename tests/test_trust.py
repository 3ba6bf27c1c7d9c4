"""Issue 23's holes, one hostile input each: a checkpoint or model folder that would run code, a small file
that would inflate, a manifest or a saved run that would allocate without bound. Each test builds the
hostile input and checks that mixaug refuses it with one line (or reads it within bounds)."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mixaug.cli import app
from mixaug.errors import MixaugError

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def one_line_error(result, pattern: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert pattern in lines[0], lines[0]
    return lines[0]


def _planted_code(folder: Path, module: str, marker: Path) -> None:
    """A Python module in a model folder that leaves a marker file when it is imported."""
    (folder / f"{module}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "class Evil:\n    def __init__(self, *a, **k):\n        pass\n"
    )


def _copy_of(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=False)
    return dest


def _with_encoder(ckpt: Path, dest: Path, encoder: str) -> Path:
    """A copy of a checkpoint whose manifest names another encoder folder."""
    _copy_of(ckpt, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["encoder"] = encoder
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest


# -- hole 1: a checkpoint can run code -----------------------------------------------------------------


@pytest.fixture
def real_encoder_copy(tmp_path) -> Path:
    from mixaug.inversion.models import resolve_encoder

    return _copy_of(resolve_encoder(None), tmp_path / "encoder")


def test_an_encoder_folder_naming_its_own_module_runs_no_code(tmp_path, real_encoder_copy, tiny_checkpoint):
    marker = tmp_path / "ran.txt"
    _planted_code(real_encoder_copy, "evil_module", marker)
    modules = json.loads((real_encoder_copy / "modules.json").read_text())
    modules[1]["type"] = "evil_module.Evil"
    (real_encoder_copy / "modules.json").write_text(json.dumps(modules))
    ckpt = _with_encoder(tiny_checkpoint, tmp_path / "ckpt", str(real_encoder_copy))
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a short sentence", "label": "x"}\n' * 2)
    result = run("augment", src, "-o", tmp_path / "out.jsonl", "--checkpoint", ckpt, "-n", "1", "-q")
    one_line_error(result, "names module type 'evil_module.Evil'")
    assert not marker.exists() and not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("path", ["../outside", "/etc"])
def test_an_encoder_module_path_may_not_leave_the_folder(real_encoder_copy, path):
    from mixaug.inversion.models import load_encoder

    modules = json.loads((real_encoder_copy / "modules.json").read_text())
    modules[1]["path"] = path
    (real_encoder_copy / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(MixaugError, match="outside the folder"):
        load_encoder(str(real_encoder_copy))


def test_an_encoder_with_pickled_weights_only_is_refused(real_encoder_copy):
    from mixaug.inversion.models import load_encoder

    (real_encoder_copy / "model.safetensors").rename(real_encoder_copy / "pytorch_model.bin")
    with pytest.raises(MixaugError, match="cannot load encoder"):
        load_encoder(str(real_encoder_copy))


def test_an_lm_folder_asking_for_its_own_code_gets_the_librarys_class(tmp_path, tiny_lm_dir):
    from mixaug.inversion.models import load_lm

    lm = _copy_of(tiny_lm_dir, tmp_path / "lm")
    marker = tmp_path / "ran.txt"
    _planted_code(lm, "evil_lm", marker)
    config = json.loads((lm / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil_lm.Evil", "AutoModelForCausalLM": "evil_lm.Evil"}
    (lm / "config.json").write_text(json.dumps(config))
    model, _, _ = load_lm(str(lm))
    assert type(model).__module__.startswith("transformers.") and not marker.exists()


def test_an_lm_folder_with_pickled_weights_only_is_refused(tmp_path, tiny_lm_dir):
    from mixaug.inversion.models import load_lm

    lm = _copy_of(tiny_lm_dir, tmp_path / "lm")
    for weights in lm.glob("*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(MixaugError, match="no .safetensors weights"):
        load_lm(str(lm))


# -- hole 3: a small compressed file inflates whole ----------------------------------------------------


def _reader():
    """The module that holds the readers and their bounds (patched there, where the readers read them)."""
    import sys

    from mixaug.data.read import read_dataset

    return sys.modules[read_dataset.__module__]


def _gzip(path: Path, pieces) -> Path:
    import gzip

    with gzip.open(path, "wb", compresslevel=1) as fh:
        for piece in pieces:
            fh.write(piece)
    return path


def test_one_huge_line_in_a_small_gzip_is_refused_without_inflating_it(tmp_path, monkeypatch):
    mio = _reader()

    monkeypatch.setattr(mio, "MAX_LINE_BYTES", 1 << 20)
    src = _gzip(tmp_path / "bomb.jsonl.gz", [b'{"text": "', *([b"a" * (1 << 20)] * 64), b'"}\n'])
    assert src.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(MixaugError, match="line 1 is longer than 1 MiB"):
            mio.read_dataset(src)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # the 64 MiB line was never held


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".csv.gz", ".tsv.gz"])
def test_a_table_too_large_to_hold_is_refused_but_limit_reads_its_head(tmp_path, monkeypatch, suffix):
    mio = _reader()

    monkeypatch.setattr(mio, "MAX_CELLS", 1000)
    rows = [f"row {i} text" for i in range(20_000)]
    if suffix == ".jsonl.gz":
        body = [json.dumps({"text": t, "label": "x"}).encode() + b"\n" for t in rows]
    else:
        sep = b"," if suffix == ".csv.gz" else b"\t"
        body = [b"text" + sep + b"label\n", *(t.encode() + sep + b"x\n" for t in rows)]
    src = _gzip(tmp_path / f"many{suffix}", body)
    result = run("augment", src, "-o", tmp_path / "out.jsonl", "--dry-run")
    one_line_error(result, "more than 1,000 values to hold in memory; read fewer rows with --limit")
    head = mio.read_dataset(src, limit=10)
    assert head["text"].tolist() == rows[:10]


def test_a_json_array_too_large_to_hold_is_refused_before_parsing(tmp_path, monkeypatch):
    mio = _reader()

    monkeypatch.setattr(mio, "MAX_CELLS", 1000)
    src = _gzip(tmp_path / "many.json.gz", [b"[", b",".join([b"{}"] * 5000), b"]"])
    with pytest.raises(MixaugError, match="more than 1,000 values"):
        mio.read_dataset(src)


def test_a_parquet_file_declaring_too_many_rows_is_refused_from_its_footer(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    mio = _reader()

    n = 200_000
    src = tmp_path / "many.parquet"
    pq.write_table(pa.table({"text": pa.nulls(n, pa.string()), "label": pa.nulls(n, pa.string())}), src)
    monkeypatch.setattr(mio, "MAX_CELLS", 1000)
    monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: pytest.fail("rows materialised before the check"))
    with pytest.raises(MixaugError, match="more than 1,000 values"):
        mio.read_dataset(src)
    head = mio.read_dataset(src, limit=5)
    assert len(head) == 5 and list(head.columns) == ["text", "label"]


def test_a_parquet_footer_declaring_huge_uncompressed_data_is_refused(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    mio = _reader()

    src = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"text": ["x" * 10_000] * 100}), src, use_dictionary=False)
    monkeypatch.setattr(mio, "MAX_PARQUET_BYTES", 100_000)
    with pytest.raises(MixaugError, match="MiB of uncompressed data"):
        mio.read_dataset(src)


def test_a_gzipped_corpus_is_read_line_by_line_within_the_line_bound(tmp_path, monkeypatch):
    mio = _reader()
    from mixaug.training.train import read_corpus

    good = _gzip(tmp_path / "c.txt.gz", [b"\xef\xbb\xbfone two three four\n", b"five six seven eight\r\n"])
    assert read_corpus([str(good)], min_words=2) == ["one two three four", "five six seven eight"]
    monkeypatch.setattr(mio, "MAX_LINE_BYTES", 1 << 20)
    bomb = _gzip(tmp_path / "bomb.txt.gz", [b"word " * (1 << 20)])
    with pytest.raises(MixaugError, match="longer than 1 MiB"):
        read_corpus([str(bomb)])


# -- hole 5: a prompt template bounded in characters, not tokens ----------------------------------------


def test_a_template_of_too_many_tokens_is_refused_before_any_decode(tmp_path, tiny_checkpoint, monkeypatch):
    from mixaug.inversion import decode

    ckpt = _copy_of(tiny_checkpoint, tmp_path / "ckpt")
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["prompt_template"] = "word " * 1900 + "{soft}"  # under the 10,000 characters a manifest may hold
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(decode, "SlotLlama", None)  # any decode would fail loudly
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"sentence {i} here", "label": "ab"[i % 2]}) + "\n" for i in range(4)))
    result = run("augment", src, "-o", tmp_path / "out.jsonl", "--checkpoint", ckpt, "-n", "2", "-q")
    one_line_error(result, "prompt_template is 1,901 tokens long: at most 256")


# -- hole 6: train --resume trusts state.json -----------------------------------------------------------

SENTENCES = [f"Sentence number {w} is about the {t}." for w in ("one", "two", "three") for t in ("cat", "dog", "sea")]


@pytest.fixture
def tiny_run(tmp_path, tiny_lm_dir) -> Path:
    from mixaug.training.train import TrainConfig, train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n")
    cfg = TrainConfig(
        out=str(tmp_path / "run"),
        corpus=[str(corpus)],
        lm=str(tiny_lm_dir),
        num_soft_tokens=2,
        hidden_dim=32,
        lora_r=0,
        train_batch=4,
        eval_every=1000,
        eval_size=2,
        save_every=2,
        max_steps=2,
    )
    train(cfg, progress=False, log=lambda m: None)
    return tmp_path / "run"


def _edit_state(run: Path, **config) -> None:
    state = json.loads((run / "state.json").read_text())
    state["config"].update(config)
    (run / "state.json").write_text(json.dumps(state))


def _resume(folder: Path):
    return run("train", "--out", folder, "--resume", "--max-steps", "3", "-q")


@pytest.mark.parametrize(
    "config,message",
    [
        ({"num_soft_tokens": 10**9}, "--num-soft-tokens must be <= 512"),
        ({"train_batch": 0}, "--batch-size must be >= 1"),
        ({"hidden_dim": "32"}, "--hidden-dim must be a finite whole number"),
        ({"lr": float("nan")}, "--lr must be a finite number"),
        ({"corpus": "corpus.txt"}, "--corpus must be a list of file names"),
        ({"batch_size": 4}, "batch_size is the old name of train_batch: give train_batch alone"),
    ],
)
def test_a_saved_config_is_checked_by_the_rules_of_a_new_one(tiny_run, config, message):
    _edit_state(tiny_run, **config)
    line = one_line_error(_resume(tiny_run), message)
    assert "state.json's config" in line


def test_a_state_json_naming_another_corpus_reads_no_new_sentences_into_the_run(tmp_path, tiny_run):
    secret = tmp_path / "secret.txt"
    secret.write_text("my password is hunter2 and my pin is 1234\n")
    before = (tiny_run / "checkpoint" / "manifest.json").read_bytes()
    _edit_state(tiny_run, corpus=[str(secret)])
    one_line_error(_resume(tiny_run), "its corpus files no longer hold the sentences it was trained on")
    assert (tiny_run / "checkpoint" / "manifest.json").read_bytes() == before
    assert json.loads((tiny_run / "state.json").read_text())["step"] == 2


def test_a_resumed_run_with_its_own_corpus_continues(tiny_run):
    result = _resume(tiny_run)
    assert result.exit_code == 0, result.output
    assert json.loads((tiny_run / "state.json").read_text())["step"] == 3


def test_a_run_saved_before_the_rename_resumes_with_its_batch(tiny_run):
    """state.json written before TrainConfig.batch_size became train_batch: read silently, the batch kept."""
    state = json.loads((tiny_run / "state.json").read_text())
    state["config"]["batch_size"] = state["config"].pop("train_batch")
    (tiny_run / "state.json").write_text(json.dumps(state))
    result = _resume(tiny_run)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    config = json.loads((tiny_run / "state.json").read_text())["config"]
    assert config["train_batch"] == 4 and "batch_size" not in config


@pytest.mark.parametrize(
    "field,value", [("train_batch", 0), ("max_steps", None), ("device", "tpu"), ("mix_prob", 2.0), ("corpus", [""])]
)
def test_train_config_refuses_what_the_cli_refuses(field, value):
    from mixaug.training.train import TrainConfig

    cfg = TrainConfig(out="run", corpus=["c.txt"], max_steps=10)
    setattr(cfg, field, value)
    with pytest.raises(MixaugError):
        cfg.validate()
    TrainConfig(out="run", corpus=["c.txt"], max_steps=10).validate()


def test_a_forged_state_safetensors_is_one_line(tiny_run):
    import torch
    from safetensors.torch import save_file

    save_file({"param/adaptor.nothing": torch.zeros(1)}, str(tiny_run / "state.safetensors"))
    one_line_error(_resume(tiny_run), "state.safetensors has no")


# -- hole 2: markup and terminal escapes in what the CLI prints ------------------------------------------


def test_group_names_are_printed_as_literal_text(tmp_path, tiny_checkpoint):
    src = tmp_path / "in.jsonl"
    groups = ["[/]", "[link=http://evil]fix[/link]", "\x1b]0;owned\x07\x1b[2J"]
    src.write_text("".join(json.dumps({"text": f"a sentence about {i}", "g": g}) + "\n" for i, g in enumerate(groups)))
    result = run(
        "invert",
        src,
        "-o",
        tmp_path / "out.jsonl",
        "--checkpoint",
        tiny_checkpoint,
        "--group-column",
        "g",
    )
    assert result.exit_code == 0, result.output
    assert "[/]:" in result.stderr and "[link=http://evil]fix[/link]:" in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr and "\\x1b]0;owned\\x07" in result.stderr
    assert (tmp_path / "out.jsonl").exists()


# -- also found: a header name starting with U+FEFF -------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".csv.gz"])
def test_a_header_name_starting_with_a_bom_character_survives_a_write(tmp_path, suffix):
    from mixaug.data.chunked import ChunkedReader, ChunkedWriter
    from mixaug.data.read import read_dataset
    from mixaug.data.write import write_dataset

    sep = "\t" if suffix == ".tsv" else ","
    src = tmp_path / f"in{suffix.replace('.gz', '')}"
    src.write_text(f"\n\ufeffname{sep}label\nfirst{sep}x\n", encoding="utf-8")  # blank first line: a name, no mark
    df = read_dataset(src)
    assert list(df.columns) == ["\ufeffname", "label"]
    out = tmp_path / f"out{suffix}"
    write_dataset(df, out)
    assert list(read_dataset(out).columns) == ["\ufeffname", "label"]
    streamed = tmp_path / f"streamed{suffix}"
    writer = ChunkedWriter(streamed)
    for chunk in ChunkedReader(src).chunks():
        writer.write(chunk)
    writer.commit()
    assert streamed.read_bytes() == out.read_bytes()
