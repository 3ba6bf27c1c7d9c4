"""The map of docs/ARCHITECTURE.md, kept true: every module belongs to one part, the import nevers hold
(imports inside functions count too), and the import graph has no cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mixaug"

PART_NAMES = {  # the map's names of its parts (the table's first column) -> the names NEVER uses
    "Face": "face",
    "API": "api",
    "Config": "config",
    "Stages": "stages",
    "Inversion": "inversion",
    "Engines": "engines",
    "Training": "training",
    "Report": "report",
    "Evaluation": "evaluation",
}


def parts_of_the_map() -> dict[str, set[str]]:
    """part -> its modules, read from docs/ARCHITECTURE.md's table of parts: the map is the one source."""
    parts: dict[str, set[str]] = {}
    for line in (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[1] in PART_NAMES:
            files = re.findall(r"`([\w/]+)\.py`", cells[2])
            parts[PART_NAMES[cells[1]]] = {f.replace("/", ".").removesuffix(".__init__") for f in files}
    return parts


PARTS = parts_of_the_map()
NEVER = {  # part -> the parts it must never import
    "stages": {"face", "api", "engines", "training", "report", "evaluation"},
    "inversion": {"face", "api", "training", "report", "evaluation"},
    "config": {"face", "api", "stages", "engines", "training", "report", "evaluation"},
    "api": {"face", "evaluation"},
    "engines": {"face", "api", "evaluation"},
    "training": {"face", "api", "evaluation"},
    "report": {"face", "api", "inversion", "training", "evaluation", "engines"},
    "evaluation": {"face"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] or ["__init__"]
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package's modules that a file imports, at the top or inside a function."""
    name = module_name(path)
    package = name.split(".")[:-1] if path.name != "__init__.py" or name == "__init__" else name.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[: len(package) - (node.level - 1)]
            targets = (
                [".".join([*base, node.module])] if node.module else [".".join([*base, a.name]) for a in node.names]
            )
        elif node.module and node.module.startswith("mixaug."):
            targets = [node.module[len("mixaug.") :]]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


GRAPH = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
IMPORTS = {m: imports_of(p, set(GRAPH)) for m, p in GRAPH.items()}
PART_OF = {m: part for part, mods in PARTS.items() for m in mods}


def test_every_module_is_on_the_map():
    assert set(GRAPH) - set(PART_OF) == set(), "a new module: give it a part in PARTS and docs/ARCHITECTURE.md"
    assert set(PART_OF) - set(GRAPH) == set(), "a module on the map is gone: update PARTS and the map"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_the_nevers_hold(module):
    forbidden = NEVER.get(PART_OF[module], set())
    bad = sorted(f"{d} ({PART_OF[d]})" for d in IMPORTS[module] if PART_OF[d] in forbidden)
    assert not bad, f"{module} ({PART_OF[module]}) imports {', '.join(bad)}"


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in IMPORTS[m]:
            assert state.get(d) != 1, "import cycle: " + " -> ".join([*path[path.index(d) :], d])
            if not state.get(d):
                visit(d, [*path, d])
        state[m] = 2

    for m in GRAPH:
        if not state.get(m):
            visit(m, [m])


def test_the_map_names_every_module():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    files = [p.relative_to(PACKAGE).as_posix() for p in GRAPH.values() if p.name != "__init__.py"]
    missing = [f for f in files if f"`{f}`" not in text]
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"


def test_eval_names_match_the_code():
    """Each arm and classifier is named once (evaluation.config); its code is found by that name, and no arm
    function is left out of ARMS."""
    from mixaug.evaluation import arms
    from mixaug.evaluation.arms import ARMS
    from mixaug.evaluation.classifiers import CLASSIFIERS
    from mixaug.evaluation.config import EVAL_ARMS, EVAL_CLASSIFIERS

    assert tuple(ARMS) == EVAL_ARMS and tuple(CLASSIFIERS) == EVAL_CLASSIFIERS
    functions = {name for name in vars(arms) if name.startswith("arm_")}
    assert functions == {f.__name__ for f in ARMS.values()}, "an arm_ function no arm names (add it to EVAL_ARMS)"


MAX_MODULE_LINES, MAX_BODY_LINES = 600, 100


def test_modules_and_functions_stay_small():
    """No module over 600 lines, no function body over 100 (from its first statement, docstring included, to
    its last line): a module that grows past it holds two ideas, a function that does, two steps."""
    big = {m: n for m, p in GRAPH.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines (split them along the idea): {big}"
    long = {}
    for m, p in GRAPH.items():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.body[0].lineno + 1
                if lines > MAX_BODY_LINES:
                    long[f"{m}.{node.name}"] = lines
    assert not long, f"function bodies over {MAX_BODY_LINES} lines (give their steps names): {long}"
