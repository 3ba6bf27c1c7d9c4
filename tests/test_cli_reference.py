"""docs/cli.md is the commands' own help, regenerated here: the test fails when the page is stale."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def reference():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_fresh():
    ref = reference()
    assert ref.PAGE.read_text(encoding="utf-8") == ref.render(), (
        f"docs/cli.md is stale: run `{ref.REFRESH}` to refresh it"
    )


def test_cli_reference_does_not_depend_on_the_terminal(monkeypatch):
    ref = reference()
    monkeypatch.setenv("COLUMNS", "40")
    narrow = ref.render()
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert ref.render() == narrow and "\x1b" not in narrow


def test_cli_reference_documents_every_command_and_option():
    ref = reference()
    page = ref.PAGE.read_text(encoding="utf-8")
    paths = [path for path, _, _ in ref.commands()]
    assert {"mixaug augment", "mixaug eval", "mixaug cache", "mixaug cache prune", "mixaug cache clear"} <= set(paths)
    for path, cmd, _ in ref.commands():
        section = page.split(f"## `{path}`\n", 1)[1].split("\n## ", 1)[0]
        for param in cmd.params:
            for name in [*param.opts, *param.secondary_opts]:
                if name.startswith("-"):
                    assert re.search(rf"(^|[\s,/]){re.escape(name)}\b", section), f"{path}: {name} missing"
