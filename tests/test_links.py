"""Issue 23, holes 7 and 8: a symlink planted where mixaug writes a file of its own name never carries the write
to what it points at (whole files replace the link, appends and folders refuse it, export copies only the files
it knows), and report.md shows data texts as inert text. `precious` stands for the user's ~/.bashrc."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mixaug.cli import app
from mixaug.errors import MixaugError, MixaugWarning

HOSTILE = "![x](http://evil/p.png) <img src=http://evil/q> [click](javascript:alert(1)) | col"
KEEP = "export PATH=/usr/bin  # the user's own file\n"


@pytest.fixture
def precious(tmp_path):
    path = tmp_path / "home" / ".bashrc"
    path.parent.mkdir()
    path.write_text(KEEP)
    return path


def plant(link, target):
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return link


def untouched(precious):
    assert precious.read_text() == KEEP and sorted(os.listdir(precious.parent)) == [".bashrc"]


def one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and pattern in lines[0], result.stderr


# -- eval's --out folder ------------------------------------------------------------------------------------


def test_eval_replaces_links_planted_in_its_out_folder_and_escapes_test_texts(
    tmp_path, precious, sample_rows, tiny_checkpoint
):
    """The cheapest real eval (one arm, one seed, one fidelity text): every file it names in --out replaces the
    link planted there; the TEST text it shows in report.md is inert."""
    from mixaug.evaluation.journal import JOURNAL

    rows = [dict(r) for r in sample_rows]
    rows[1]["text"] = HOSTILE  # a TEST row (odd rows), the first one the fidelity section inverts
    df = pd.DataFrame(rows)
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    df.iloc[::2].to_json(train, orient="records", lines=True)
    df.iloc[1::2].to_json(test, orient="records", lines=True)
    out = tmp_path / "out"
    names = ["report.md", "results.json", "summary.json", "accuracy.png", JOURNAL]
    for name in names:
        plant(out / name, precious)
    args = ["eval", "--train", train, "--test", test, "--out", out, "--shots", "2", "--seeds", "1"]
    args += ["--methods", "none", "--fidelity-n", "1", "--control-pairs", "0", "--checkpoint", tiny_checkpoint, "-q"]
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    untouched(precious)
    for name in ("report.md", "results.json", "summary.json", "accuracy.png"):
        assert (out / name).is_file() and not (out / name).is_symlink(), name
    assert not os.path.lexists(out / JOURNAL)  # removed once the eval finished: the link, not its target
    report = (out / "report.md").read_text()
    assert json.loads((out / "results.json").read_text())["fidelity"]["examples"][0]["original"] == HOSTILE
    assert md_inert(report)
    assert r"\!\[x\]\(http://evil/p.png\) &lt;img src=http://evil/q&gt; \[click\]" in report


def md_inert(markdown: str) -> bool:
    """No image, link, HTML tag or table cell of HOSTILE's left live (each of its marks behind a backslash);
    the one image lines are mixaug's own plots."""
    text = re.sub(r"^!\[(\w+)\.png\]\(\1\.png\)$", "", markdown, flags=re.M)
    return not re.search(r"!\[|\]\(|<img|(?<!\\)\[click|(?<!\\)\| col", text)


def test_eval_journal_refuses_a_link_it_would_append_through(tmp_path, precious):
    from mixaug.evaluation.journal import RunJournal

    journal = RunJournal(plant(tmp_path / "out" / "runs.partial.jsonl", tmp_path / "home" / "new"), "k")
    with pytest.raises(MixaugError, match="is a symbolic link"):
        journal.add([2, 0, "none"], {"accuracy": 1.0})
    untouched(precious)


def test_eval_writes_its_plots_through_named_file():
    """The plots are saved by _save_plot (named_file), never by savefig onto a path that a link could hold."""
    import inspect

    from mixaug.evaluation import outputs as evaluate

    source = inspect.getsource(evaluate._plots)
    assert "_save_plot(fig, out /" in source and ".savefig(" not in source


# -- the mechanism ------------------------------------------------------------------------------------------


def test_write_named_replaces_a_link_and_append_named_refuses_one(tmp_path, precious):
    from mixaug.data.write import _umask, append_named, write_named

    os.chmod(precious, 0o600)
    link = plant(tmp_path / "run" / "state.json", precious)
    write_named(link, b"{}")
    assert not link.is_symlink() and link.read_bytes() == b"{}"
    assert stat.S_IMODE(os.stat(link).st_mode) == 0o666 & ~_umask()  # not the mode of the link's target
    log = plant(tmp_path / "run" / "train_log.jsonl", precious)
    with pytest.raises(OSError, match="is a symbolic link"):
        append_named(log, b'{"eval": 1}\n')
    dangling = plant(tmp_path / "run" / "other.jsonl", tmp_path / "home" / "created")
    with pytest.raises(OSError, match="is a symbolic link"):
        append_named(dangling, b"x\n")
    untouched(precious)


def test_named_folder_refuses_a_link_below_its_root(tmp_path, precious):
    from mixaug.data.write import named_folder

    root = plant(tmp_path / "cache", tmp_path / "real-cache")  # the root itself may be a link: the user's choice
    (tmp_path / "real-cache" / "task").mkdir(parents=True)
    assert named_folder(root, "task", "abc") == root / "task" / "abc"
    plant(root / "decodes", precious.parent)
    with pytest.raises(OSError, match="is a symbolic link"):
        named_folder(root, "decodes")
    untouched(precious)


def test_atomic_folder_replaces_a_link_and_a_dangling_one(tmp_path, precious):
    from mixaug.data.write import atomic_folder

    for name, target in (("ckpt", precious.parent), ("dangling", tmp_path / "home" / "gone")):
        dest = plant(tmp_path / "run" / name, target)
        with atomic_folder(dest) as tmp:
            (tmp / "manifest.json").write_text("{}")
        assert not dest.is_symlink() and (dest / "manifest.json").read_text() == "{}"
    assert sorted(os.listdir(tmp_path / "run")) == ["ckpt", "dangling"]
    untouched(precious)


# -- train's run folder and the caches ------------------------------------------------------------------------


def test_train_state_and_log_never_write_through_links(tmp_path, precious):
    from mixaug.training.loop import _append_jsonl, _save_state

    run = tmp_path / "run"
    for name in ("state.json", "state.safetensors", "state.safetensors.tmp"):
        plant(run / name, precious)
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param])
    param.grad = torch.ones(3)
    optimizer.step()
    _save_state(run, {"adaptor.w": param}, optimizer, {"step": 1})
    assert json.loads((run / "state.json").read_text()) == {"step": 1}
    assert not (run / "state.safetensors").is_symlink()
    plant(run / "train_log.jsonl", precious)
    with pytest.raises(OSError, match="is a symbolic link"):
        _append_jsonl(run / "train_log.jsonl", {"eval": {}})
    untouched(precious)


class _Encoder:
    name, normalize, dim = "fake", True, 2

    def encode(self, texts, batch_size=32, on_batch=None):
        return np.ones((len(texts), self.dim), dtype=np.float32)


def test_cached_embeddings_replace_a_link_at_the_file_and_write_none_through_one_at_the_folder(
    tmp_path, precious, monkeypatch
):
    from mixaug.training.train import cached_embeddings

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    cached_embeddings(_Encoder(), ["a", "b"])
    (npy,) = (tmp_path / "cache" / "embeddings").iterdir()
    npy.unlink()
    plant(npy, tmp_path / "home" / "created")
    plant(npy.with_suffix(".tmp.npy"), precious)  # where mixaug staged the file before
    assert cached_embeddings(_Encoder(), ["a", "b"]).shape == (2, 2)
    assert not npy.is_symlink() and np.load(npy).shape == (2, 2)
    shutil.rmtree(tmp_path / "cache" / "embeddings")
    plant(tmp_path / "cache" / "embeddings", precious.parent)  # read through (the user's own link), never written
    with pytest.warns(MixaugWarning, match="symbolic link"):
        assert cached_embeddings(_Encoder(), ["a", "b"]).shape == (2, 2)
    untouched(precious)


def test_decode_cache_with_a_planted_link_goes_memory_only(tmp_path, precious, monkeypatch, tiny_checkpoint):
    from mixaug.errors import MixaugWarning
    from mixaug.inversion.decode_cache import DecodeCache, decode_cache_path

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MIXAUG_NO_DECODE_CACHE", raising=False)
    path = decode_cache_path(tiny_checkpoint, "cpu")
    plant(path, precious)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cache = DecodeCache(path)  # neither read nor appended to
        cache.add(["k"], ["a decoded text"])
    assert [type(w.message) for w in seen] == [MixaugWarning] and "symbolic link" in str(seen[0].message)
    assert cache.path is None and cache["k"] == "a decoded text"
    path.unlink()
    shutil.rmtree(path.parent)
    plant(path.parent, precious.parent)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert decode_cache_path(tiny_checkpoint, "cpu") is None
    assert len(seen) == 1 and "symbolic link" in str(seen[0].message)
    untouched(precious)


# -- export -------------------------------------------------------------------------------------------------


def test_export_copies_only_the_lora_files_it_knows(tmp_path, tiny_lora_checkpoint):
    source = tmp_path / "src"
    shutil.copytree(tiny_lora_checkpoint, source)
    (source / "lora" / "notes.txt").write_text("not mixaug's")
    r = CliRunner().invoke(app, ["export", str(source), str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(tmp_path / "out" / "lora")) == ["adapter_config.json", "adapter_model.safetensors"]


@pytest.mark.parametrize("planted", ["lora/adapter_config.json", "lora"])
def test_export_refuses_a_link_among_the_lora_files(tmp_path, tiny_lora_checkpoint, planted):
    """The link points at a valid copy (it passes every check of the checkpoint), kept outside: the export must
    still not carry it."""
    source = tmp_path / "src"
    shutil.copytree(tiny_lora_checkpoint, source)
    outside = tmp_path / "home" / planted.replace("/", "-")
    outside.parent.mkdir()
    shutil.move(source / planted, outside)
    plant(source / planted, outside)
    r = CliRunner().invoke(app, ["export", str(source), str(tmp_path / "out")])
    one_line_error(r, "is a symbolic link")
    assert not os.path.lexists(tmp_path / "out")


# -- report.md text -----------------------------------------------------------------------------------------


def test_md_text_leaves_nothing_live():
    from mixaug.evaluation.outputs import md_text

    assert md_text(HOSTILE) == (
        r"\!\[x\]\(http://evil/p.png\) &lt;img src=http://evil/q&gt; \[click\]\(javascript:alert\(1\)\) \| col"
    )
    assert md_text("# title\n> quote\r\n`code` a&b *em* \\") == r"\# title↵&gt; quote↵\`code\` a&amp;b \*em\* \\"
    assert md_text("bell\x07 esc\x1b[31m rtl\u202e end") == r"bell\x07 esc\x1b\[31m rtl\x202e end"
    assert md_text(0.8125) == "0.8125" and md_text("mixaug:hard:intra") == "mixaug:hard:intra"


def test_render_report_escapes_every_data_text():
    """Fidelity examples (TEST texts and their reconstructions) and the file names, the data report.md shows."""
    from mixaug.evaluation.outputs import render_report

    results = {
        "config": {"train": f"/data/{HOSTILE}.jsonl", "test": "t`e<st>.csv", "seeds": 1, "max_new_rows": 1, "ratio": 1},
        "train_rows": 1,
        "test_rows": 1,
        "classes": ["a"],
        "summary": [],
        "eda_ops": [],
        "fidelity": {"n": 1, "examples": [{"original": HOSTILE, "reconstruction": f"line one\n# {HOSTILE}"}]},
        "controllability": {},
        "intrusion": [],
        "speed": {"new_rows_per_s": {}, "encode_sentences_per_s": 1, "peak_rss_mb": 1},
    }
    report = render_report(results, [])
    assert md_inert(report) and "<st>" not in report and "t`e" not in report
    examples = [l for l in report.splitlines() if "evil/p.png" in l and l.startswith("| ")]
    assert len(examples) == 1 and examples[0].count(" | ") == 1  # one row, two cells: no line break, no pipe
