"""The README cannot drift from the CLI: every `mixaug` command in its bash blocks runs here, in a shell, on
the tiny checkpoint ($MIXAUG_CHECKPOINT), with the files it names; hours-long ones (train, eval, export,
and those reading a training run under build/) are parsed with the CLI's own option parser instead."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PARSE_ONLY = {"train", "eval", "export"}


def parse_only(line: str) -> bool:
    """Hours-long commands, and those that need a training run's files under build/."""
    return subcommand(line) in PARSE_ONLY or "build/" in line


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if re.search(r"(^|\|\s*)mixaug\b", line):
                commands.append(line)
    return commands


def subcommand(line: str) -> str:
    words = shlex.split(line.split("|")[-1].split(">")[0])
    return words[1] if len(words) > 1 else ""


def test_the_readme_documents_commands():
    cmds = readme_commands()
    assert len(cmds) >= 15 and {subcommand(c) for c in cmds} >= {"augment", "invert", "mix", "info", "report", "train"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_checkpoint):
    """A folder holding the files the examples name."""
    folder = tmp_path_factory.mktemp("readme")
    rows = [json.loads(l) for l in (ROOT / "examples" / "intents.jsonl").read_text().splitlines()]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::4]))
    (folder / "my_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:12]))
    sizes = {"travel": 10, "weather": 6, "music": 4, "food": 3}  # a long tail, for *With imbalanced-learn*
    tail = [r for k, r in enumerate(rows) if sum(q["label"] == r["label"] for q in rows[:k]) < sizes[r["label"]]]
    (folder / "long_tail.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tail))
    unlabelled = pd.DataFrame({"utterance": [r["text"] for r in rows], "id": [r["id"] for r in rows]})
    unlabelled.to_csv(folder / "unlabelled.csv", index=False)
    unlabelled.rename(columns={"utterance": "text"}).to_json(folder / "unlabelled.jsonl", orient="records", lines=True)
    with open(folder / "train.csv", "w") as fh:
        fh.write("id,text,label\n" + "".join(f'{r["id"]},"{r["text"]}",{r["label"]}\n' for r in rows))
    return folder


@pytest.mark.parametrize("line", [c for c in readme_commands() if not parse_only(c)])
def test_readme_command_runs(workdir, tiny_checkpoint, line):
    env = dict(
        os.environ,
        MIXAUG_CHECKPOINT=str(tiny_checkpoint),
        HF_HUB_OFFLINE="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    assert shutil.which("mixaug", path=env["PATH"]), "the mixaug command is not installed in this environment"
    r = subprocess.run(
        ["bash", "-o", "pipefail", "-c", line], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, f"{line}\n{r.stderr[-2000:]}"
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("line", [c for c in readme_commands() if parse_only(c)])
def test_readme_command_parses(line):
    from typer.main import get_command

    from mixaug.cli import app

    args = shlex.split(line)[1:]
    get_command(app).make_context("mixaug", args, resilient_parsing=False)  # a wrong option raises here


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("block", readme_python_blocks())
def test_readme_python_block_runs(workdir, tiny_checkpoint, block):
    env = dict(os.environ, MIXAUG_CHECKPOINT=str(tiny_checkpoint), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-c", block], cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{block}\n{r.stderr[-2000:]}"
