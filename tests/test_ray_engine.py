"""--engine ray: a local 2-worker Ray cluster decodes the plan, and the file is the local engine's, byte
for byte (skipped where Ray is not installed, unless MIXAUG_REQUIRE_RAY=1, as CI sets)."""

import importlib.util
import os

import pytest
from typer.testing import CliRunner

from mixaug import stacks
from mixaug.cli import app

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None and not os.environ.get("MIXAUG_REQUIRE_RAY"),
    reason="Ray not installed (pip install 'mixaug[ray]')",
)


@pytest.mark.parametrize(
    "plan",
    [[], ["--balance", "equal", "--pairing", "boundary"], ["--anchor", "4"]],
    ids=["intra", "balance-boundary", "anchor"],
)
def test_ray_engine_output_is_byte_identical_to_local(tmp_path, sample_file, tiny_checkpoint, monkeypatch, plan):
    import json

    monkeypatch.setenv("MIXAUG_NO_DECODE_CACHE", "1")  # both runs decode every row
    monkeypatch.setattr(stacks, "_STACKS", {})  # stacks loaded without a disk cache must not outlive the test
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    runner = CliRunner()
    common = ["--checkpoint", str(tiny_checkpoint), "-n", "24", "--batch-size", "4", "--max-new-tokens", "8"]
    common += ["--temperature", "0.9", "-q", *plan]  # sampled: each row's generator must travel with it
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    r = runner.invoke(app, ["augment", str(sample_file), "-o", str(local), *common])
    assert r.exit_code == 0, r.output
    monkeypatch.setattr(stacks, "_STACKS", {})  # nothing decoded in memory: the workers decode every row
    from mixaug.data import chunked

    reads = []
    chunks = chunked.ChunkedReader.chunks
    monkeypatch.setattr(chunked.ChunkedReader, "chunks", lambda self: reads.append(1) or chunks(self))
    stats = tmp_path / "s.json"
    args = ["augment", str(sample_file), "-o", str(remote), *common, "--engine", "ray", "--num-workers", "2"]
    r = runner.invoke(app, [*args, "--stats-json", str(stats)])
    assert r.exit_code == 0, r.output
    assert r.stderr == ""  # -q: nothing from Ray either
    assert remote.read_bytes() == local.read_bytes()
    assert len(reads) == 2  # streamed: the rows read in chunks, once for the key columns, once to copy them
    assert json.loads(stats.read_text())["decode"]["rows"] >= 24  # decoded (and counted) on the workers


def test_engine_and_workers_are_checked(tmp_path, sample_file):
    runner = CliRunner()
    for option, value, message in (("--engine", "spark", "--engine must be one of"), ("--num-workers", "0", ">= 1")):
        r = runner.invoke(app, ["augment", str(sample_file), "-o", str(tmp_path / "o.jsonl"), option, value])
        assert r.exit_code == 2 and message in r.stderr, r.output
