"""--adapt-on FILE (stage 2 on the user's own unlabelled text) and the mixaug_weight column."""

from __future__ import annotations

import importlib
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from mixaug.cli import app
from mixaug.config import ADAPT_ON_SEED, AugmentConfig
from mixaug.errors import MixaugError
from mixaug.evaluation.config import parse_method, variant_options

FAST = ["--max-new-tokens", "4", "-q"]
POOL = [
    "Could you book me a table for two tonight?",
    "Please cancel my dentist appointment on Friday.",
    "What is the weather like in Lisbon this weekend?",
    "Turn the living room lights off.",
    "Remind me to call my sister at six.",
    "Play some quiet jazz in the kitchen.",
]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def pool_file(tmp_path):
    p = tmp_path / "pool.csv"
    pd.DataFrame({"utterance": POOL, "label": ["x"] * len(POOL)}).to_csv(p, index=False)
    return p


def test_adapt_on_adapts_once_on_the_pool_and_the_rows_whatever_the_seed(
    tmp_path, sample_file, sample_rows, pool_file, tiny_checkpoint, monkeypatch
):
    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    train = importlib.import_module("mixaug.training.train")
    real, calls = train.adapt, []

    def spy(texts, checkpoint, steps, minutes, seed, *args, **kw):
        calls.append((list(texts), seed, steps))
        return real(texts, checkpoint, steps, minutes, seed, *args, **kw)

    monkeypatch.setattr(train, "adapt", spy)
    stats = []
    for seed in (3, 4):
        out, js = tmp_path / f"out{seed}.jsonl", tmp_path / f"s{seed}.json"
        common = ["--checkpoint", tiny_checkpoint, "--adapt-on", pool_file, "--adapt-on-column", "utterance"]
        r = run("augment", sample_file, "-o", out, *common, "--adapt-steps", 2, "--seed", seed, "-n", 4,
                "--stats-json", js, *FAST)  # fmt: skip
        assert r.exit_code == 0, r.output
        assert len(pd.read_json(out, lines=True)) == len(sample_rows) + json.loads(js.read_text())["new_rows"]
        stats.append(json.loads(js.read_text()))
    # the pool's texts first, then the rows' own; one adaptation seed, so both runs share one checkpoint
    assert calls[0] == (POOL + [r["text"] for r in sample_rows], ADAPT_ON_SEED, 2) and calls[1] == calls[0]
    adapted = stats[0]["checkpoint"]
    assert adapted == stats[1]["checkpoint"] and adapted != str(tiny_checkpoint)
    manifest = json.loads((tmp_path / "cache" / adapted / "manifest.json").read_text())
    assert manifest["training"]["stage"] == "adapt" and manifest["training"]["steps"] == 2


def test_adapt_on_reads_the_text_column_as_the_input_names_it(tmp_path, pool_file):
    from mixaug.inputs import pool_texts

    assert pool_texts(AugmentConfig(adapt_on=str(pool_file), text_column="utterance")) == POOL
    assert pool_texts(AugmentConfig(adapt_on=str(pool_file), adapt_on_column="utterance")) == POOL
    other = tmp_path / "other.jsonl"
    other.write_text('{"text": "one"}\n{"text": ""}\n{"text": "two"}\n')
    # --text-column names the input's column; a pool without it falls back to the usual candidates
    assert pool_texts(AugmentConfig(adapt_on=str(other), text_column="utterance")) == ["one", "two"]
    assert pool_texts(AugmentConfig(adapt_on=other)) == ["one", "two"]  # a Path, as read_dataset takes
    with pytest.raises(MixaugError, match="--adapt-on: no text column") as err:
        pool_texts(AugmentConfig(adapt_on=str(pool_file)))
    assert "--adapt-on-column" in str(err.value) and "--text-column" not in str(err.value)


def test_a_pool_is_read_up_to_its_bound(tmp_path, pool_file, monkeypatch):
    from mixaug import inputs
    from mixaug.errors import MixaugWarning

    monkeypatch.setattr(inputs, "MAX_POOL_TEXTS", 4)
    with pytest.warns(MixaugWarning, match="using the first 4 texts of a longer file"):
        assert inputs.pool_texts(AugmentConfig(adapt_on=str(pool_file), adapt_on_column="utterance")) == POOL[:4]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--adapt-on", "{tmp}/missing.jsonl"], "--adapt-on: input file not found"),
        (["--adapt-on", "-"], "--adapt-on must name a file, not stdin"),
        (["--adapt-on", "{pool}"], "--adapt-on: no text column"),
        (["--adapt-on", "{pool}", "--adapt-on-column", "nope"], "--adapt-on: text column 'nope' not found"),
        (["--adapt-on", "{pool}", "--adapt-on-column", ""], "--adapt-on-column must name a column"),
    ],
)
def test_a_bad_adapt_on_is_one_line_before_any_model(tmp_path, sample_file, pool_file, args, message, monkeypatch):
    from mixaug import stacks

    def no_model(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(stacks, "load_stack", no_model)
    monkeypatch.setattr(importlib.import_module("mixaug.training.train"), "adapt", no_model)
    out = tmp_path / "out.jsonl"
    args = [a.format(tmp=tmp_path, pool=pool_file) for a in args]
    r = run("augment", sample_file, "-o", out, *args, "-q")
    assert r.exit_code != 0 and message in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()


def test_mixaug_weight_is_fidelity_times_confidence_and_one_for_originals(sample_rows, tiny_checkpoint):
    from mixaug.data.provenance import row_weight
    from mixaug.pipeline import augment

    for policy in ("hard", "parent"):
        out = augment(pd.DataFrame(sample_rows), checkpoint=str(tiny_checkpoint), num_augmented=6,
                      label_policy=policy, max_new_tokens=4)  # fmt: skip
        orig, new = out[out.mixaug_source == "original"], out[out.mixaug_source == "mixup"]
        assert len(new) and (orig.mixaug_weight == 1.0).all()
        conf = new.mixaug_label_confidence.astype(float).fillna(1.0)
        expected = (new.mixaug_fidelity.astype(float).clip(0, 1) * conf).round(4)  # 4 places, like its factors
        assert new.mixaug_weight.astype(float).tolist() == pytest.approx(expected.tolist(), abs=1e-12)
        assert all(len(repr(w).split(".")[-1]) <= 4 for w in new.mixaug_weight)  # not 0.5536447999999999
    assert row_weight(-0.2, 0.9) == 0.0 and row_weight(1.5, None) == 1.0 and row_weight(0.5, float("nan")) == 0.5


def test_pool_is_an_eval_variant():
    m = parse_method("mixaug+pool+weighted")
    assert m.variant_parts == ("pool", "weighted") and variant_options(m.variant) == {}
    with pytest.raises(MixaugError, match=r"\+pool"):
        parse_method("mixaug+pools")


def test_eval_pool_adapts_on_every_train_text_once(tmp_path, sample_rows, tiny_checkpoint, monkeypatch):
    """mixaug+pool: TRAIN's texts, every one (not only the sampled shots), labels unused, one adaptation for
    every seed (the spy hands back the base checkpoint: what is checked is what it was asked to adapt on)."""
    from mixaug.evaluation.config import EvalConfig
    from mixaug.evaluation.run import run_eval

    calls = []
    monkeypatch.setattr(
        importlib.import_module("mixaug.training.train"),
        "adapt",
        lambda texts, checkpoint, steps, minutes, seed, *a, **k: calls.append((list(texts), seed)) or checkpoint,
    )
    df = pd.DataFrame(sample_rows).rename(columns={"text": "utterance"})
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    df.iloc[::2].to_json(train, orient="records", lines=True)
    df.iloc[1::2].to_json(test, orient="records", lines=True)
    cfg = EvalConfig(str(train), str(test), str(tmp_path / "out"), text_column="utterance", shots=[2], seeds=2,
                     methods=["none", "mixaug+pool+weighted"], fidelity_n=0, control_pairs=0,
                     checkpoint=str(tiny_checkpoint))  # fmt: skip
    results = run_eval(cfg)
    pool = df.iloc[::2]["utterance"].tolist()
    assert len(calls) == 2 and all(seed == ADAPT_ON_SEED for _, seed in calls)
    for texts, _ in calls:  # TRAIN's texts, then the sampled rows' (already among them)
        assert texts[: len(pool)] == pool and set(texts) == set(pool)
    assert {r["method"] for r in results["runs"]} == {"none", "mixaug+pool+weighted"}


def test_an_adapted_checkpoint_is_keyed_by_its_texts_once_each(tmp_path, tiny_checkpoint, monkeypatch):
    """The pool plus rows already in it (eval's shots, a user's labelled rows copied from the pool) adapt to
    the same checkpoint as the pool alone: one adaptation per pool, not one per sample of it."""
    from mixaug.training.train import adapt

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    logs: list[str] = []
    first = adapt(POOL, tiny_checkpoint, steps=2, batch_size=4, progress=False, log=logs.append)
    again = adapt(POOL + POOL[3:1:-1], tiny_checkpoint, steps=2, batch_size=4, progress=False, log=logs.append)
    assert again == first and "reusing" in logs[-1]
    other = adapt(POOL[::-1], tiny_checkpoint, steps=2, batch_size=4, progress=False, log=logs.append)
    assert other != first  # the order is the training stream's: a different order is a different run
