"""The file-level API (`mixaug.augment_file`, `invert_file`): the path the CLI takes, with the same checks
before any work and the same bytes out."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import mixaug
from mixaug.cli import app
from mixaug.errors import MixaugError

FAST = dict(max_new_tokens=4)


def test_augment_file_writes_what_the_cli_writes(tmp_path, sample_file, tiny_checkpoint):
    cli_out, api_out = tmp_path / "cli.jsonl", tmp_path / "api.jsonl"
    args = ["augment", str(sample_file), "-o", str(cli_out), "--checkpoint", str(tiny_checkpoint)]
    result = CliRunner().invoke(
        app, [*args, "-n", "4", "--max-new-tokens", "4", "-q", "--stats-json", str(tmp_path / "c.json")]
    )
    assert result.exit_code == 0, result.output
    cfg = mixaug.AugmentConfig(num_augmented=4, checkpoint=str(tiny_checkpoint), **FAST)
    stats = mixaug.augment_file(sample_file, api_out, cfg, stats_json=tmp_path / "a.json", report=tmp_path / "a.html")
    assert api_out.read_bytes() == cli_out.read_bytes()
    assert json.loads((tmp_path / "a.json").read_text())["new_rows"] == stats["new_rows"] == 4
    assert "<html" in (tmp_path / "a.html").read_text()


def test_augment_file_checks_every_output_before_any_work(tmp_path, sample_file, monkeypatch):
    from mixaug import stacks

    monkeypatch.setattr(stacks, "load_stack", lambda *a, **k: pytest.fail("models loaded before the check"))
    existing = tmp_path / "aug.jsonl"
    existing.write_text("keep me\n")
    with pytest.raises(MixaugError, match="exists"):
        mixaug.augment_file(sample_file, existing)
    with pytest.raises(MixaugError, match="--output.*--stats-json|--stats-json.*--output"):
        mixaug.augment_file(sample_file, tmp_path / "a.jsonl", stats_json=tmp_path / "a.jsonl")
    with pytest.raises(MixaugError, match="unknown option"):
        mixaug.augment_file(sample_file, tmp_path / "b.jsonl", no_such_option=1)
    assert existing.read_text() == "keep me\n" and not (tmp_path / "a.jsonl").exists()


def test_preview_file_plans_without_writing(tmp_path, sample_file, tiny_checkpoint):
    plan = mixaug.preview_file(sample_file, num_augmented=3, checkpoint=str(tiny_checkpoint), **FAST)
    assert plan["planned"] == 3 and plan["pairing"] == "intra" and plan["samples"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [sample_file.name]


def test_invert_file_and_its_stats_by_group(tmp_path, sample_file, tiny_checkpoint):
    out = tmp_path / "inv.jsonl"
    stats = mixaug.invert_file(
        sample_file, out, group_column="label", checkpoint=str(tiny_checkpoint), stats_json=tmp_path / "s.json"
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    labels = {r["label"] for r in rows}
    assert set(stats) == {"all", *labels} and stats["all"]["n"] == len(rows)
    assert sum(stats[k]["n"] for k in labels) == len(rows)
    assert json.loads((tmp_path / "s.json").read_text()) == json.loads(json.dumps(stats))
    assert all("reconstruction" in r and "fidelity" in r for r in rows)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("seeds", 0, "--seeds must be >= 1"),
        ("shots", [0], "--shots must be >= 1"),
        ("classifiers", ["svm"], "--classifier takes one or more of logreg, tfidf, finetune"),
        ("methods", ["mixaug:hard:nearest"], "bad method"),
        ("ratio", 0, "--ratio must be > 0"),
        ("decode_batch", 0, "--batch-size must be >= 1"),
        ("precision", "int4", "--precision must be one of"),
    ],
)
def test_eval_config_refuses_what_the_cli_refuses(field, value, message):
    from mixaug.evaluation.config import EvalConfig

    cfg = EvalConfig(train="train.jsonl", test="test.jsonl", out="out")
    cfg.validate()
    setattr(cfg, field, value)
    with pytest.raises(MixaugError, match=message):
        cfg.validate()
    flag = "--" + {"classifiers": "classifier"}.get(field, field).replace("_", "-")
    cli_value = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    result = CliRunner().invoke(
        app, ["eval", "--train", "train.jsonl", "--test", "test.jsonl", "--out", "out", flag, cli_value]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
