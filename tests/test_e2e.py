"""End to end on the real default stack: packaged MiniLM, real SmolLM2-135M (GGUF), shipped checkpoint."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from mixaug.cli import app
from mixaug.inversion.checkpoint import DEFAULT_CHECKPOINT, read_manifest

pytestmark = pytest.mark.slow


def test_default_checkpoint_ships_trained():
    manifest = read_manifest(DEFAULT_CHECKPOINT)
    assert manifest.lm.endswith("SmolLM2-135M-Instruct")
    assert manifest.training["steps"] > 0 and manifest.metrics["cosine"] > 0.2


def test_augment_with_real_stack(tmp_path, sample_rows):
    src = tmp_path / "train.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in sample_rows[:12]))
    out = tmp_path / "out.jsonl"
    stats = tmp_path / "stats.json"
    r = CliRunner().invoke(app, ["augment", str(src), "-o", str(out), "-n", "4", "--stats-json", str(stats), "-q"])
    assert r.exit_code == 0, r.output
    df = pd.read_json(out, lines=True)
    new = df[df.mixaug_source == "mixup"]
    s = json.loads(stats.read_text())
    assert s["new_rows"] == len(new) >= 2
    words = " ".join(new.text).split()
    assert len(words) >= 8  # real sentences, not empty strings
    assert new.mixaug_fidelity.between(-1, 1).all() and new.mixaug_fidelity.mean() > 0.1


def test_quiet_first_run_prints_nothing_on_stderr(tmp_path, sample_rows):
    """A fresh cache (so the GGUF conversion runs too) and --quiet: stdout carries the data, stderr nothing."""
    import os
    import subprocess
    import sys

    src = tmp_path / "train.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in sample_rows[:12]))
    env = dict(os.environ, MIXAUG_CACHE=str(tmp_path / "fresh-cache"), HF_HUB_OFFLINE="1")
    env.pop("MIXAUG_CHECKPOINT", None)
    r = subprocess.run(
        [sys.executable, "-c", "from mixaug.cli import main; main()", "augment", str(src), "-o", "-", "-n", "3", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert sum(json.loads(l)["mixaug_source"] == "mixup" for l in r.stdout.splitlines()) == 3
