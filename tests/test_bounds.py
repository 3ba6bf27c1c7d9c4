"""Plans and reads with bounds (issue 34): whole-file inputs checked before a byte is read, --adapt-on's file
read no further than it is used, the class count bounded, the dry run like a real run, what reaches a
terminal escaped, and `mixaug cache` (show, prune, clear)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mixaug.cli import app
from mixaug.config import AugmentConfig
from mixaug.errors import MixaugError

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


# -- inputs read whole ----------------------------------------------------------------------------
def test_a_device_is_refused_before_a_byte_is_read():
    from mixaug.data.read import read_dataset

    started = time.monotonic()
    for fmt in ("parquet", "json"):
        with pytest.raises(MixaugError, match="/dev/zero: not a regular file"):
            read_dataset("/dev/zero", fmt)  # would otherwise fill 4 GiB (parquet) or 1 GiB (json) first
    assert time.monotonic() - started < 2


def test_a_file_too_large_to_read_whole_is_refused_by_its_size(tmp_path):
    from mixaug.data.read import read_dataset

    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate((1 << 30) + 1)  # sparse: 1 GiB + 1 byte that no one reads
    started = time.monotonic()
    with pytest.raises(MixaugError, match="more than 1024 MiB to read whole"):
        read_dataset(big)
    assert time.monotonic() - started < 2


def test_a_pipe_is_still_read_whole(tmp_path):
    """A FIFO (`<(zcat rows.json)`) is a legitimate input: read in pieces, as its bytes come."""
    import threading

    from mixaug.data.read import read_dataset

    fifo = tmp_path / "rows.json"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(json.dumps([{"text": "a", "label": 1}] * 3)))
    writer.start()
    df = read_dataset(fifo)
    writer.join()
    assert df["text"].tolist() == ["a"] * 3


def test_adapt_on_holds_no_more_of_its_file_than_it_uses(tmp_path, monkeypatch):
    import tracemalloc

    from mixaug import inputs
    from mixaug.errors import MixaugWarning

    monkeypatch.setattr(inputs, "MAX_POOL_TEXTS", 3)
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"text": f"sentence {i} " + "x" * 1000}) + "\n" for i in range(20_000)))
    tracemalloc.start()
    try:
        with pytest.warns(MixaugWarning, match="using the first 3 texts of a longer file"):
            texts = inputs.pool_texts(AugmentConfig(adapt_on=str(pool)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [t.split()[1] for t in texts] == ["0", "1", "2"]
    assert peak < 4 << 20  # a 20 MB file, streamed: what is held is 4 rows, not the file


# -- plans -----------------------------------------------------------------------------------------
def test_too_many_classes_is_one_line_before_any_model(monkeypatch):
    import mixaug
    from mixaug import stacks

    monkeypatch.setattr(stacks, "load_for", lambda *a: pytest.fail("a model loaded"))
    df = pd.DataFrame({"text": [f"row {i}" for i in range(4002)], "label": [i // 2 for i in range(4002)]})
    with pytest.raises(
        MixaugError, match="label column 'label' holds 2,001 classes; mixaug plans and labels at most 2,000"
    ):
        mixaug.augment(df)


def test_the_labeller_fits_an_equal_share_of_each_class_past_its_memory_bound(monkeypatch):
    from mixaug import label

    y = np.repeat(np.arange(4), [50, 30, 3, 1])
    assert label.fit_rows(y, 4, seed=0) is None  # 84 rows x 4 classes: under the bound, every row
    monkeypatch.setattr(label, "FIT_CELLS", 160)  # share = 160 // 4 // 4 = 10 rows a class
    rows = label.fit_rows(y, 4, seed=0)
    assert np.bincount(y[rows]).tolist() == [10, 10, 3, 1] and (np.diff(rows) > 0).all()
    assert (label.fit_rows(y, 4, seed=0) == rows).all() and not (label.fit_rows(y, 4, seed=1) == rows).all()
    emb = np.random.default_rng(0).normal(size=(len(y), 8))
    labeller = label.Labeller(emb, y.tolist())
    assert labeller.proba(emb).shape == (len(y), 4)  # every class kept


def test_planning_groups_rows_by_class_in_one_sort():
    from mixaug.mix import class_rows

    codes = np.random.default_rng(0).integers(0, 50, 5000)
    groups = class_rows(codes)
    assert sorted(groups) == sorted(set(codes.tolist()))
    assert all((groups[c] == np.flatnonzero(codes == c)).all() for c in groups)


# -- the dry run and the terminal ------------------------------------------------------------------
def test_dry_run_checks_adapt_on_like_a_real_run(tmp_path, sample_file, tiny_checkpoint):
    r = run("augment", sample_file, "--dry-run", "--checkpoint", tiny_checkpoint, "--adapt-on", tmp_path / "nope.jsonl")
    assert r.exit_code == 2 and "--adapt-on: input file not found" in r.stderr


def test_dry_run_samples_come_from_the_adapted_checkpoint(tmp_path, sample_rows, tiny_checkpoint, monkeypatch):
    from mixaug import pipeline, stacks
    from mixaug.training import train

    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"text": "an unlabelled sentence"}) + "\n")
    calls = []

    def adapt(texts, checkpoint, *args, **kwargs):
        calls.append(texts)
        return tiny_checkpoint  # stands for the adapted folder: its stack is the one the samples must use

    loaded = []
    monkeypatch.setattr(train, "adapt", adapt)
    real_load = stacks.load_stack
    monkeypatch.setattr(stacks, "load_stack", lambda ckpt, *a: loaded.append(ckpt) or real_load(ckpt, *a))
    cfg = AugmentConfig(checkpoint=str(tmp_path / "unadapted"), adapt_on=str(pool), max_new_tokens=4)
    plan = pipeline.preview(pd.DataFrame(sample_rows), cfg, samples=2)
    assert calls == [["an unlabelled sentence"] + [r["text"] for r in sample_rows]]
    assert loaded == [tiny_checkpoint] and len(plan["samples"]) == 2


def test_dry_run_shows_parents_cut_like_the_report(tmp_path, sample_rows, tiny_checkpoint):
    from mixaug.report import TEXT_CHARS

    rows = [dict(r, text=r["text"] + " word" * 5000) for r in sample_rows]
    src = tmp_path / "long.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run("augment", src, "--dry-run", "--checkpoint", tiny_checkpoint, "--max-new-tokens", "4")
    assert r.exit_code == 0, r.output
    assert len(r.stderr) < 20 * TEXT_CHARS * 5  # five samples of cut parents, not 5 x 50 KB
    for sample in json.loads(r.stderr)["samples"]:
        assert len(sample["a"]) == len(sample["b"]) == TEXT_CHARS and sample["a"].endswith("…")


def test_mix_escapes_control_characters_on_stdout(monkeypatch):
    from mixaug import pipeline

    hostile = "red \x1b[31mtext\x1b[0m and CSI \x9b2J end"
    monkeypatch.setattr(pipeline, "mix_texts", lambda *a, **k: [{"lambda": 0.5, "text": hostile}])
    for extra in ([], ["--json"]):
        r = run("mix", "a", "b", *extra)
        assert r.exit_code == 0, r.output
        assert "\x1b" not in r.stdout and "\x9b" not in r.stdout
    assert "\\x1b[31mtext" in run("mix", "a", "b").stdout
    assert json.loads(run("mix", "a", "b", "--json").stdout)["text"] == hostile  # the same data, escaped


# -- mixaug cache ----------------------------------------------------------------------------------
@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("MIXAUG_CACHE", str(root))
    (root / "decodes").mkdir(parents=True)
    (root / "adapted" / "old" / "checkpoint").mkdir(parents=True)
    (root / "adapted" / "old" / "checkpoint" / "adaptor.safetensors").write_bytes(b"x" * 3000)
    (root / "adapted" / ".building-1").mkdir()  # being built by a run: never touched
    (root / "decodes" / "new.jsonl").write_bytes(b"y" * 100)
    month = time.time() - 40 * 86400
    os.utime(root / "adapted" / "old", (month, month))
    outside = tmp_path / "models-on-a-big-disk"
    outside.mkdir()
    (outside / "weights.bin").write_bytes(b"z" * 50)
    (root / "lm").mkdir()
    (root / "lm" / "converted").symlink_to(outside)  # a link the user made: removed as a link, never followed
    return root, outside


def test_cache_shows_each_kind(cache):
    root, _ = cache
    r = run("cache", "--json")
    assert r.exit_code == 0, r.output
    facts = {k["kind"]: k for k in json.loads(r.stdout)["kinds"]}
    assert facts["adapted"]["entries"] == 1 and facts["adapted"]["bytes"] == 3000  # the hidden one not counted
    assert facts["decodes"]["bytes"] == 100 and facts["lm"]["entries"] == 1 and facts["int8"]["entries"] == 0
    text = run("cache").stdout
    assert str(root) in text and "adapted" in text and "3.0 KB" in text


def test_cache_prune_removes_only_what_is_older(cache):
    root, _ = cache
    r = run("cache", "prune", "--older-than", "30d", "--dry-run")
    assert (
        r.exit_code == 0 and r.stdout.strip() == str(root / "adapted" / "old") and (root / "adapted" / "old").exists()
    )
    r = run("cache", "prune", "--older-than", "30d")
    assert r.exit_code == 0 and "removed 1 entries (3.0 KB)" in r.stderr
    assert not (root / "adapted" / "old").exists() and (root / "adapted" / ".building-1").exists()
    assert (root / "decodes" / "new.jsonl").exists()


def test_cache_clear_by_kind_never_follows_a_link(cache):
    root, outside = cache
    assert run("cache", "clear", "--kind", "lm").exit_code == 0
    assert not (root / "lm" / "converted").is_symlink() and (outside / "weights.bin").exists()
    assert (root / "decodes" / "new.jsonl").exists()
    assert run("cache", "clear").exit_code == 0 and not (root / "decodes" / "new.jsonl").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["prune", "--older-than", "soon"], "--older-than takes a number and a unit"),
        (["clear", "--kind", "models"], "--kind must be one of decodes, int8"),
    ],
)
def test_cache_refuses_bad_options_in_one_line(cache, args, message):
    r = run("cache", *args)
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.output


def test_cache_prune_removes_a_killed_builds_leftover_only_while_nobody_builds(cache):
    from mixaug.cache import entry_lock

    root, _ = cache
    leftover = root / "adapted" / ".abc123.k2x_9q.building"
    (leftover / "checkpoint").mkdir(parents=True)
    (leftover / "checkpoint" / "adaptor.safetensors").write_bytes(b"w" * 10)
    with entry_lock(root / "adapted" / "abc123", wait=0) as mine:
        assert mine  # a live run building abc123 holds this lock
        assert run("cache", "prune", "--older-than", "0s").exit_code == 0
        assert leftover.exists()
    r = run("cache", "prune", "--older-than", "0s")
    assert r.exit_code == 0 and not leftover.exists() and str(leftover) in r.stdout
    assert (root / "adapted" / ".building-1").exists()  # not a build's leftover: a hidden name stays


def test_cache_never_empties_a_kind_folder_the_user_linked_elsewhere(cache, tmp_path):
    root, _ = cache
    models = tmp_path / "my-models"
    models.mkdir()
    (models / "someone-elses-model").mkdir()
    (root / "decodes" / "new.jsonl").unlink()
    (root / "decodes").rmdir()
    (root / "decodes").symlink_to(models)
    assert json.loads(run("cache", "--json").stdout)["kinds"][0]["entries"] == 1  # listed ...
    assert run("cache", "clear").exit_code == 0
    assert (models / "someone-elses-model").exists()  # ... never removed
    assert not (root / "adapted" / "old").exists()
