"""`mixaug report`: the page from an augmented file (no model), and a real headless Chromium that renders it."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mixaug import report
from mixaug.cli import app
from mixaug.data.write import write_dataset
from mixaug.report import LABEL_CHARS, MAX_MAP_POINTS, OTHER, TEXT_CHARS, TOP_LABELS, top_labels

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


def new_row_provenance(a, b, label_a, label_b) -> dict:
    """The provenance columns `augment` writes on a new row (parents a and b, mid-way, no intrusion)."""
    return {
        "mixaug_source": "mixup",
        "mixaug_parent_a": a,
        "mixaug_parent_b": b,
        "mixaug_parent_a_label": label_a,
        "mixaug_parent_b_label": label_b,
        "mixaug_lambda": 0.5,
        "mixaug_fidelity": 0.5,
        "mixaug_label_confidence": 0.5,
        "mixaug_intrusion": False,
    }


def object_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a table of object columns, a key a row lacks as None (as a JSONL file reads back)."""
    df = pd.DataFrame(rows).astype(object)
    return df.where(df.notna(), None)


def many_labels_frame(n_labels: int = 3000, n_new: int = 600) -> pd.DataFrame:
    """One original per label, each label a long string; new rows of random parent pairs (some intrusions)."""
    rng = np.random.default_rng(0)
    labels = [f"label {i:04d} " + "with a very long name " * 20 for i in range(n_labels)]
    rows = [
        {"text": f"row {i} about w{i} and w{i % 97}", "label": l, "mixaug_source": "original"}
        for i, l in enumerate(labels)
    ]
    for j in range(n_new):
        a, b = (int(i) for i in rng.integers(n_labels, size=2))
        rows.append(
            {
                "text": f"new row {j} about w{a} and w{b}",
                "label": labels[a] if j % 5 else labels[int(rng.integers(n_labels))],
                **new_row_provenance(a, b, labels[a], labels[b]),
            }
        )
    return object_frame(rows)


def test_report_size_is_bounded_whatever_the_labels(tmp_path):
    """3,000 long labels: the page names the commonest TOP_LABELS, pools the rest, and cuts label text."""
    df = many_labels_frame()
    path = tmp_path / "aug.jsonl"
    write_dataset(df, path)
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(path), "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    page = out.read_text(encoding="utf-8")
    assert len(page.encode()) < 400_000  # 19 MB before labels were bucketed
    matrix = re.search(r'<table class="matrix">(.*?)</table>', page).group(1)
    rows = matrix.split("<tr>")[1:]
    assert 1 < len(rows) - 1 <= TOP_LABELS + 1  # less the header row
    assert rows[0].count("<th>") - 1 == TOP_LABELS + 1  # less the corner; 600 new rows hold > 20 labels
    assert "other labels)" in rows[0] and "other parent pairs)" in matrix
    longest = max(len(h) for h in re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", matrix))
    assert longest <= 2 * LABEL_CHARS + 3  # a pair: two cut labels and " + "
    assert df["label"][0] not in page and "with a very long name with a very" not in page


def test_a_bucket_is_never_a_label():
    """OTHER is not a string, so a label spelt like the bucket's name stays a label of its own."""
    b = top_labels(["x"] * 3 + ["OTHER", "(1 other labels)"] + [f"l{i}" for i in range(30)], k=2)
    assert b.shown[:1] == ["x"] and b.shown[-1] is OTHER and len(b.shown) == 3
    assert b.of.count(OTHER) == 31 and b.others == 31
    assert b.name(OTHER) == "(31 other labels)" and b.name("y" * 100) == "y" * (LABEL_CHARS - 1) + "…"


@pytest.mark.parametrize("name", ["aug.jsonl", "aug.csv"])
def test_report_infers_text_and_label_columns_from_new_rows(tmp_path, name):
    """Written with `--text-column message --label-column intent` and no stats file: the new rows fill only
    those two columns, so the report finds them; the flags still override."""
    df = augmented_frame().rename(columns={"text": "message", "label": "intent"})
    note = ["kept" if s == "original" else None for s in df["mixaug_source"]]  # a column new rows leave empty
    df.insert(1, "note", pd.Series(note, dtype=object))
    path = tmp_path / name
    write_dataset(df, path)
    r = runner.invoke(app, ["report", str(path), "-o", "-"])
    assert r.exit_code == 0, r.output
    assert "Text column <code>message</code>, label column\n<code>intent</code>" in r.stdout
    assert "new &lt;b&gt;row&lt;/b&gt;" in r.stdout
    r = runner.invoke(app, ["report", str(path), "-o", "-", "--text-column", "note", "--label-column", "intent"])
    assert r.exit_code == 0, r.output
    assert "Text column <code>note</code>, label column\n<code>intent</code>" in r.stdout
    is_new = df["mixaug_source"] == "mixup"
    only_text = df.rename(columns={"intent": "label"}).astype(object)  # an unlabelled run: 'label' left empty
    only_text.loc[is_new, ["label", "mixaug_parent_a_label", "mixaug_parent_b_label", "mixaug_intrusion"]] = None
    unlabelled = tmp_path / f"unlabelled.{name}"
    write_dataset(only_text, unlabelled)
    r = runner.invoke(app, ["report", str(unlabelled), "-o", "-"])
    assert r.exit_code == 0, r.output
    assert "Text column <code>message</code>, label column\n<code>(none)</code>" in r.stdout


def outlier_frame() -> pd.DataFrame:
    """Originals in one vocabulary and three outliers in another, half the new rows a child of an outlier:
    the map's limits cut the outliers off, and lines to them would leave the plot."""
    rng = np.random.default_rng(0)
    common = "soup bread pasta cake song album jazz band".split()
    rows = [
        {"id": f"o{i}", "text": " ".join(rng.choice(common, 4)), "label": "ab"[i % 2], "mixaug_source": "original"}
        for i in range(60)
    ]
    rows += [
        {"id": f"x{i}", "text": f"zebra quantum xylophone {i} zebra", "label": "a", "mixaug_source": "original"}
        for i in range(3)
    ]
    originals = list(rows)
    for j in range(40):
        a, b = originals[60 + j % 3] if j % 2 else originals[j], originals[(j * 7) % 60]
        rows.append(
            {
                "id": None,
                "text": " ".join(rng.choice(common, 3)) + (" zebra" if j % 2 else ""),
                "label": "a",
                **new_row_provenance(a["id"], b["id"], a["label"], b["label"]),
            }
        )
    return object_frame(rows)


@pytest.mark.parametrize("max_points", [MAX_MAP_POINTS, 50])
def test_map_lines_end_at_plotted_points(monkeypatch, max_points):
    """Every parent line joins two points drawn inside the axes: none to an outlier cut off by the limits,
    none to a point the map's sample left out."""
    figures = []
    monkeypatch.setattr(report, "_png", lambda fig: figures.append(fig) or "png")
    monkeypatch.setattr(report, "MAX_MAP_POINTS", max_points)
    report.map_plot(report.split(outlier_frame(), id_column="id"))
    ax = figures[0].axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    plotted = {tuple(p) for c in ax.collections for p in np.asarray(c.get_offsets()).tolist()}
    assert ax.lines
    for line in ax.lines:
        xs, ys = line.get_data()
        for x, y in zip(xs, ys):
            assert x0 <= x <= x1 and y0 <= y <= y1
            assert (x, y) in plotted


def test_report_size_is_bounded_whatever_the_texts(tmp_path):
    """1 MB texts, a 100,000-character text column name, 10,000 more columns and a stats file of 10,000 long
    reasons: every text and name is cut to TEXT_CHARS before it is escaped and the reasons are pooled, so the
    page stays small and still opens on the beginning of each text."""
    name = "column " * 14_286  # 100,002 characters
    df = augmented_frame().rename(columns={"text": name})
    df[name] = [f"begins {i} & " + "lorem <ipsum> " * 75_000 for i in range(len(df))]  # 1 MB each
    extra = pd.DataFrame({f"c{i}": ["x"] * 12 + [None] * 12 for i in range(10_000)}, dtype=object)
    path = tmp_path / "aug.jsonl"
    write_dataset(pd.concat([df, extra], axis=1), path)
    stats = tmp_path / "s.json"
    rejected = {f"reason {i} " + "why " * 1000: i for i in range(10_000)}
    stats.write_text(json.dumps({"rejected": rejected, "pairing": "p" * 1_000_000}))
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(path), "-o", str(out), "--stats-json", str(stats), "-q"])
    assert r.exit_code == 0, r.output
    page = out.read_text(encoding="utf-8")
    assert len(page.encode()) < 1_000_000  # 36 MB (texts alone) before texts were cut
    assert "begins 12 &amp; lorem &lt;ipsum&gt;" in page  # a new row's text, escaped after it was cut
    cells = re.findall(r"<(?:td|code|b)>([^<]*)", page)
    assert max(len(html.unescape(c)) for c in cells) == TEXT_CHARS
    assert "column column" in page and name not in page
    assert "reason 9999 why" in page and f"({10_000 - TOP_LABELS:,} other reasons)" in page
