"""The README and the docs pages cannot drift from the CLI: every `mixaug` command in the bash blocks of README.md
and docs/*.md runs here, in a shell, on the tiny checkpoint ($MIXAUG_CHECKPOINT), with the files it names, in a
folder of its own page; every Python block runs too. Commands that cannot run here are parsed with the CLI's
own option parser instead (`parse_only` says which and why). A `mixaug` command outside a bash block is an
error, so none escapes; docs/cli.md holds help text only (tests/test_cli_reference.py checks it)."""

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
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PARSE_ONLY = {"train", "eval", "export"}  # hours long


def parse_only(line: str) -> bool:
    """Hours-long commands, those that need a training run's files under build/, and `--engine ray`, which needs
    the optional Ray extra (tests/test_ray_engine.py runs it where it is installed)."""
    return subcommand(line) in PARSE_ONLY or "build/" in line or "--engine ray" in line


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def fenced(page: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced block of a page."""
    return re.findall(r"^```(\w*)\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


def page_commands(page: Path) -> list[str]:
    commands = []
    for lang, block in fenced(page):
        if lang != "bash":
            continue
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if re.search(r"(^|\|\s*)mixaug\b", line):
                commands.append(line)
    return commands


def python_blocks(page: Path) -> list[str]:
    return [block for lang, block in fenced(page) if lang == "python"]


def cases(kind: str) -> list:
    out = []
    for page in PAGES:
        if kind == "python":
            out += [pytest.param(page, b, id=f"{name(page)}:{k + 1}") for k, b in enumerate(python_blocks(page))]
            continue
        for line in page_commands(page):
            if parse_only(line) == (kind == "parse"):
                out.append(pytest.param(page, line, id=f"{name(page)}: {line}"))
    return out


def subcommand(line: str) -> str:
    words = shlex.split(line.split("|")[-1].split(">")[0])
    return words[1] if len(words) > 1 else ""


def test_the_readme_documents_commands():
    cmds = page_commands(ROOT / "README.md")
    assert len(cmds) >= 10 and {subcommand(c) for c in cmds} >= {"augment", "invert", "mix", "info", "report"}


def test_every_docs_page_with_commands_has_them_found():
    """The pages that show commands (all but the generated reference and the architecture map) each have bash
    blocks this test runs, and together they cover every command."""
    pages = {name(p): page_commands(p) for p in PAGES}
    for page in ("docs/data-safety.md", "docs/output.md", "docs/how-it-works.md", "docs/checkpoint.md"):
        assert pages[page], page
    for page in ("docs/imbalanced.md", "docs/results.md", "docs/speed.md"):
        assert pages[page], page
    everything = {subcommand(c) for cmds in pages.values() for c in cmds}
    assert everything >= {"augment", "invert", "mix", "info", "report", "train", "adapt", "export", "eval", "cache"}


def test_no_command_hides_outside_a_bash_block():
    """A `mixaug` command in a plain, `sh` or `console` block would be neither run nor parsed."""
    for page in PAGES:
        for lang, block in fenced(page):
            if lang in ("bash", "python"):
                continue
            stray = [l for l in block.splitlines() if re.match(r"\s*(\$\s*)?mixaug\s", l)]
            assert not stray, f"{name(page)}: mark the block holding {stray[0]!r} as bash"


def test_relative_links_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.exists(), f"{name(page)} links to {target}, which does not exist"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_checkpoint):
    """A folder holding the files the examples name; each page runs in a copy of its own."""
    folder = tmp_path_factory.mktemp("readme") / "files"
    folder.mkdir()
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


def page_folder(workdir: Path, page: Path) -> Path:
    """The page's own copy of the files: a page's commands may use what its earlier commands wrote, never what
    another page's did."""
    folder = workdir.parent / name(page).replace("/", "-")
    if not folder.exists():
        shutil.copytree(workdir, folder)
    return folder


@pytest.mark.parametrize("page, line", cases("run"))
def test_readme_command_runs(workdir, tiny_checkpoint, page, line):
    env = dict(
        os.environ,
        MIXAUG_CHECKPOINT=str(tiny_checkpoint),
        HF_HUB_OFFLINE="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    assert shutil.which("mixaug", path=env["PATH"]), "the mixaug command is not installed in this environment"
    r = subprocess.run(
        ["bash", "-o", "pipefail", "-c", line],
        cwd=page_folder(workdir, page),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"{line}\n{r.stderr[-2000:]}"
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("page, line", cases("parse"))
def test_readme_command_parses(page, line):
    from typer.main import get_command

    from mixaug.cli import app

    args = shlex.split(line)[1:]
    get_command(app).make_context("mixaug", args, resilient_parsing=False)  # a wrong option raises here


@pytest.mark.parametrize("page, block", cases("python"))
def test_readme_python_block_runs(workdir, tiny_checkpoint, page, block):
    env = dict(os.environ, MIXAUG_CHECKPOINT=str(tiny_checkpoint), HF_HUB_OFFLINE="1")
    r = subprocess.run(
        [sys.executable, "-c", block],
        cwd=page_folder(workdir, page),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"{block}\n{r.stderr[-2000:]}"
