"""`mixaug report`: the page from an augmented file (no model), and a real headless Chromium that renders it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
from typer.testing import CliRunner

from mixaug.cli import app
from mixaug.io import write_dataset

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def augmented_frame(n_new: int = 12) -> pd.DataFrame:
    """What `augment --id-column id` writes, built by hand: 3 classes of originals, new rows with provenance."""
    words = {"food": "soup bread pasta cake", "music": "song album jazz band", "travel": "flight train hotel bus"}
    rows = []
    for label, vocab in words.items():
        for i, w in enumerate(vocab.split()):
            rows.append(
                {
                    "id": f"{label[0]}{i}",
                    "text": f"I would like some {w} please",
                    "label": label,
                    "mixaug_source": "original",
                }
            )
    originals = list(rows)
    for j in range(n_new):
        a, b = originals[j % len(originals)], originals[(j * 5 + 1) % len(originals)]
        label = a["label"] if j % 4 else b["label"]
        rows.append(
            {
                "id": None,
                "text": f"new <b>row</b> {j} about {a['text'].split()[-2]} & more",
                "label": label,
                "mixaug_source": "mixup",
                "mixaug_parent_a": a["id"],
                "mixaug_parent_b": b["id"],
                "mixaug_parent_a_label": a["label"],
                "mixaug_parent_b_label": b["label"],
                "mixaug_lambda": round(j / n_new, 3),
                "mixaug_fidelity": 0.3 + 0.05 * (j % 7),
                "mixaug_label_confidence": 0.5 + 0.04 * j,
                "mixaug_intrusion": label not in (a["label"], b["label"]),
            }
        )
    df = pd.DataFrame(rows).astype(object)
    return df.where(df.notna(), None)


STATS = {
    "text_column": "text",
    "label_column": "label",
    "id_column": "id",
    "rejected": {"duplicate": 3, "empty": 1},
    "pairing": "random",
    "label_policy": "hard",
    "shortfall": 0,
}


@pytest.mark.parametrize("name", ["aug.jsonl", "aug.csv", "aug.parquet"])
def test_report_from_each_format(tmp_path, name):
    path = tmp_path / name
    write_dataset(augmented_frame(), path)
    stats = tmp_path / "s.json"
    stats.write_text(json.dumps(STATS))
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(path), "-o", str(out), "--stats-json", str(stats), "-q"])
    assert r.exit_code == 0, r.output
    page = out.read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 5  # map, counts, λ, fidelity, confidence
    assert "<b>row</b>" not in page and "new &lt;b&gt;row&lt;/b&gt;" in page  # user text is escaped
    assert "I would like some soup please" in page  # a parent's text beside its new row
    assert "duplicate" in page and "lowest fidelity first" in page
    assert "http://" not in page and "https://" not in page  # self-contained: nothing fetched


def test_report_default_name_and_refusals(tmp_path):
    path = tmp_path / "aug.jsonl"
    write_dataset(augmented_frame(), path)
    r = runner.invoke(app, ["report", str(path), "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "aug.report.html").exists()
    r = runner.invoke(app, ["report", str(path), "-q"])
    assert r.exit_code == 2 and "--overwrite" in r.stderr
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"text": "a", "label": "x"}\n')
    r = runner.invoke(app, ["report", str(plain), "-o", str(tmp_path / "p.html")])
    assert r.exit_code == 2 and "no mixaug_* provenance columns" in r.stderr
    assert not (tmp_path / "p.html").exists()


def test_report_without_stats_or_originals(tmp_path):
    df = augmented_frame()
    only_new = df[df["mixaug_source"] == "mixup"]
    path = tmp_path / "new.jsonl"
    write_dataset(only_new, path)
    r = runner.invoke(app, ["report", str(path), "-o", "-"])
    assert r.exit_code == 0, r.output
    assert "Pass the run's <code>--stats-json</code>" in r.stdout and r.stdout.startswith("<!doctype html>")


def chromium(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ]
    with __import__("tempfile").TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *flags, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=timeout
        )


def console_errors(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if "CONSOLE" in l and ("Uncaught" in l or "Error" in l)]


browser = pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("MIXAUG_REQUIRE_BROWSER"),
    reason="no chromium (make browser installs Debian's; CI requires it)",
)


@browser
def test_page_renders_in_chromium_without_console_errors(tmp_path):
    assert CHROMIUM, "MIXAUG_REQUIRE_BROWSER is set but chromium is not installed"
    path = tmp_path / "aug.jsonl"
    write_dataset(augmented_frame(), path)
    page = tmp_path / "r.html"
    assert runner.invoke(app, ["report", str(path), "-o", str(page), "-q"]).exit_code == 0
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_errors(dom.stderr) == [], console_errors(dom.stderr)
    rendered = re.search(r'data-plots-rendered="(\d+)"', dom.stdout)
    assert rendered and int(rendered.group(1)) == 5, dom.stdout[:300]  # every plot decoded and laid out
    shot = tmp_path / "shot.png"
    r = chromium("--hide-scrollbars", "--window-size=1280,1800", f"--screenshot={shot}", page.as_uri())
    assert r.returncode == 0 and shot.stat().st_size > 20_000
    # the check above can fail: a page with a script error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    assert console_errors(chromium("--virtual-time-budget=2000", "--dump-dom", bad.as_uri()).stderr)
