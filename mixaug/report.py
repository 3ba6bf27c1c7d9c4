"""`mixaug report`: one self-contained HTML page about a file `augment` wrote, to look at before training.

It reads the augmented *file* (any format `io` reads) and never loads a model: the 2-D map is a TF-IDF +
SVD projection of the texts, not of encoder embeddings. Plots are matplotlib PNGs inlined as data URIs
(smaller than SVG for scatter plots of a few thousand points), so the page opens offline from a file.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .data.columns import column_list, resolve_text_column
from .data.formats import is_missing
from .data.provenance import PREFIX, PROVENANCE
from .data.read import read_dataset
from .errors import MixaugError

MAX_MAP_POINTS = 4000  # beyond this the map shows a seeded sample
PARENT_LINES = 25  # new rows whose lines to their parents are drawn on the map
SAMPLE_ROWS = 20  # new rows in each of the two tables of rows
TOP_LABELS = 20  # labels (and parent pairs) named in each plot and table; the rest share one bucket, OTHER
LABEL_CHARS = 32  # a label is cut to this many characters (ending in …) wherever the page shows it
TEXT_CHARS = 300  # any other text from the file or the stats file (a row's text, a column name) is cut to this


@dataclass
class Augmented:
    """An augmented table split into what the report needs."""

    originals: pd.DataFrame
    new: pd.DataFrame
    text_col: str
    label_col: str | None
    parent_text: dict  # parent id -> its text (empty when the file holds only new rows)


def _key(value) -> str:
    """A parent id as text: 34 (JSONL, Parquet) and "34" (CSV) name the same row."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _truthy(value) -> bool:
    """A provenance flag as any format wrote it: true (JSON, Parquet) or "true" (CSV/TSV)."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def load_augmented(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read a file `mixaug augment` wrote; a file without its provenance columns is a one-line error."""
    df = read_dataset(path, fmt)
    if "mixaug_source" not in df.columns:
        raise MixaugError(
            f"{path} has no mixaug_* provenance columns (columns found: {column_list(df.columns)}); "
            "`mixaug report` reads files that `mixaug augment` wrote"
        )
    return df


def read_stats(path: str | Path | None) -> dict | None:
    if path is None:
        return None
    try:
        stats = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MixaugError(f"stats file not found: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise MixaugError(f"cannot read stats file {path}: {str(exc).splitlines()[0][:120]}") from None
    if not isinstance(stats, dict):
        raise MixaugError(f"{path} is not a stats file of `mixaug augment --stats-json` (not a JSON object)")
    return stats


def _blank(value) -> bool:
    """An unfilled cell: None/NaN (JSON, Parquet) or "" (how CSV/TSV read one back)."""
    return is_missing(value) or (isinstance(value, str) and value == "")


def filled_columns(new: pd.DataFrame) -> list[str]:
    """The user columns that the new rows fill: `write.build_output` fills only the text and the label column
    of a new row (besides provenance) and leaves the others empty."""
    return [c for c in new.columns if not str(c).startswith(PREFIX) and not all(_blank(v) for v in new[c])]


def _label_share(new: pd.DataFrame, originals: pd.DataFrame, col: str) -> float:
    """The share of the new rows whose value in `col` is a known label: a parent's label or one of the
    originals' values there (the labeller picks among the input's labels). A new text is neither: copies of
    inputs are rejected."""
    known = {_key(v) for c in ("mixaug_parent_a_label", "mixaug_parent_b_label") for v in new[c]}
    known |= {_key(v) for v in originals[col]}
    return float(np.mean([_key(v) in known for v in new[col]]))


def columns_from_rows(
    new: pd.DataFrame, originals: pd.DataFrame, text: str | None = None, label: str | None = None
) -> tuple[str, str | None] | None:
    """(text, label column) as the new rows show them, keeping either one already given (a flag, the stats
    file): a file written with `--text-column message` says so itself. None where the rows do not tell: no
    new rows, or more columns filled than two, or two and neither looks more like labels."""
    rest = [c for c in filled_columns(new) if c not in (text, label)]
    if text is None and label is None and len(rest) == 2:
        share = [_label_share(new, originals, c) for c in rest]
        if share[0] == share[1]:
            return None
        label = rest.pop(int(share[1] > share[0]))
    if text is None:
        if len(rest) != 1:
            return None
        text = rest.pop()
    if label is None:
        if len(rest) > 1:
            return None
        label = rest[0] if rest else None  # nothing else filled: an unlabelled run
    return text, label


def split(
    df: pd.DataFrame,
    text_column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    stats: dict | None = None,
) -> Augmented:
    """Originals and new rows, and which columns hold text, label and ids (options, else the stats file, else
    the columns the new rows fill, else the names `augment` picks by default)."""
    stats = stats or {}
    for key in ("text_column", "label_column", "id_column"):
        if stats.get(key) is not None and not isinstance(stats[key], str):
            raise MixaugError(f"the stats file's {key} must be a column name, found {stats[key]!r}")
    missing = [c for c in PROVENANCE if c not in df.columns]
    if missing:
        raise MixaugError(f"the file lacks provenance column(s) {', '.join(missing)}; is it `augment` output?")
    source = df["mixaug_source"].tolist()
    odd = [s for s in source if not (isinstance(s, str) and s in ("original", "mixup"))]
    if odd:
        raise MixaugError(f"mixaug_source holds {str(odd[0])[:40]!r}; expected original or mixup")
    is_new = np.array([s == "mixup" for s in source], dtype=bool)
    originals, new = df[~is_new].reset_index(drop=True), df[is_new].reset_index(drop=True)
    text_col = text_column or stats.get("text_column")
    label_col = label_column or stats.get("label_column")
    inferred = columns_from_rows(new, originals, text_col, label_col)
    if inferred is not None:
        text_col, label_col = inferred
    else:
        text_col = text_col or resolve_text_column(df, None)
        label_col = label_col or ("label" if "label" in df.columns else None)
    id_col = id_column or stats.get("id_column")
    for what, col in (("text", text_col), ("label", label_col), ("id", id_col)):
        if col is not None and col not in df.columns:
            raise MixaugError(f"{what} column '{col}' not found; columns found: {column_list(df.columns)}")
    if id_col:
        parent_text = {_key(k): t for k, t in zip(originals[id_col].tolist(), originals[text_col].tolist())}
    else:  # parents are named by input row number, and the originals keep the input's order
        parent_text = {_key(i): t for i, t in enumerate(originals[text_col].tolist())}
    return Augmented(originals, new, text_col, label_col, parent_text)


# -- labels shown -------------------------------------------------------------------------------------


class _Other:
    """The bucket of everything not named. Not a string: labels are shown as text, so no label, whatever
    it is called, can be mistaken for it."""

    def __repr__(self) -> str:
        return "OTHER"


OTHER = _Other()


def short(text: str, limit: int = LABEL_CHARS) -> str:
    """A label cut to `limit` characters: the page must not grow with the length of a label."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Buckets:
    """What a plot or table shows of some labels (or parent pairs): the commonest by name, the rest as OTHER."""

    shown: list  # the TOP_LABELS commonest values, commonest first, then OTHER if any value is left
    of: list  # each value's bucket: itself, or OTHER
    others: int  # how many distinct values OTHER holds
    noun: str

    def name(self, bucket) -> str:
        """A bucket as the page writes it, cut to LABEL_CHARS (a pair: each label cut)."""
        if bucket is OTHER:
            return f"({self.others:,} other {self.noun})"
        return " + ".join(map(short, bucket)) if isinstance(bucket, tuple) else short(bucket)


def top_labels(values: list, noun: str = "labels", k: int = TOP_LABELS) -> Buckets:
    """Bucket `values` (strings, or tuples of them): every plot and table goes through here, so the page grows
    with k, not with the number of distinct labels."""
    counts = Counter(values)
    named = sorted(counts, key=lambda v: (-counts[v], v))[:k]
    keep = set(named)
    others = len(counts) - len(named)
    return Buckets(named + [OTHER] * bool(others), [v if v in keep else OTHER for v in values], others, noun)


# -- plots ----------------------------------------------------------------------------------------------


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(width=5.2, height=3.4):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _label_colours(buckets: list) -> dict:
    import matplotlib

    named = [b for b in buckets if b is not OTHER]
    cmap = matplotlib.colormaps["tab10" if len(named) <= 10 else "tab20"]
    return {b: (0.6, 0.6, 0.6, 1.0) if b is OTHER else cmap(named.index(b) % cmap.N) for b in buckets}


def _limits(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The map's extent: the points' range cut at 2 IQRs past the quartiles (a few unusual texts must not
    squash the rest, so they fall outside), plus a margin."""
    q1, q3 = np.percentile(xy, [25, 75], axis=0)
    lo = np.maximum(xy.min(axis=0), q1 - 2 * (q3 - q1))
    hi = np.minimum(xy.max(axis=0), q3 + 2 * (q3 - q1))
    pad = (hi - lo) * 0.05 + 1e-9
    return lo - pad, hi + pad


def _parent_lines(a: Augmented, visible: np.ndarray, rng) -> list[tuple[int, int]]:
    """(parent, new row) point indices for up to PARENT_LINES new rows, only where both ends are visible: a
    parent sampled out of the map, or beyond its limits, would draw a line to nothing, off the plot."""
    n = len(a.originals)
    row_of = {pid: i for i, pid in enumerate(a.parent_text)}
    parents = list(zip(a.new["mixaug_parent_a"].tolist(), a.new["mixaug_parent_b"].tolist()))
    lines: list[tuple[int, int]] = []
    drawn = 0
    for j in rng.permutation(len(a.new)):
        if drawn == PARENT_LINES:
            break
        ends = [row_of.get(_key(pid)) for pid in parents[j]] if visible[n + j] else []
        ends = [i for i in ends if i is not None and visible[i]]
        lines += [(i, n + j) for i in ends]
        drawn += bool(ends)
    return lines


def map_plot(a: Augmented, seed: int = 0) -> str | None:
    """Originals (dots) and new rows (crosses) on a TF-IDF + SVD plane, coloured by label, with lines from a
    sample of new rows to their two parents."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [t if isinstance(t, str) else "" for t in a.originals[a.text_col].tolist() + a.new[a.text_col].tolist()]
    kinds = np.array([0] * len(a.originals) + [1] * len(a.new))
    if sum(bool(t.strip()) for t in texts) < 3:
        return None
    try:
        x = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit_transform(texts)
    except ValueError:  # an empty vocabulary: no word of two characters anywhere
        return None
    if x.shape[1] < 3:
        return None
    xy = TruncatedSVD(n_components=2, random_state=seed).fit_transform(x)
    labels = top_labels([str(l) for l in _labels(a)])
    colours = _label_colours(labels.shown)
    code = {b: i for i, b in enumerate(labels.shown)}
    codes = np.array([code[b] for b in labels.of])
    rng = np.random.default_rng(seed)
    shown = (
        np.arange(len(texts))
        if len(texts) <= MAX_MAP_POINTS
        else np.sort(rng.choice(len(texts), MAX_MAP_POINTS, replace=False))
    )
    lo, hi = _limits(xy[shown])
    visible = np.zeros(len(texts), dtype=bool)
    visible[shown] = np.all((xy[shown] >= lo) & (xy[shown] <= hi), axis=1)
    fig, ax = _figure(6.4, 4.6)
    for kind, marker, size, alpha in ((0, "o", 14, 0.55), (1, "x", 18, 0.9)):
        idx = shown[kinds[shown] == kind]
        for bucket, i in code.items():
            pick = idx[codes[idx] == i]
            if len(pick):
                ax.scatter(
                    xy[pick, 0],
                    xy[pick, 1],
                    s=size,
                    marker=marker,
                    color=colours[bucket],
                    alpha=alpha,
                    linewidths=1,
                    label=f"{labels.name(bucket)} ({'new' if kind else 'original'})",
                )
    for p, q in _parent_lines(a, visible, rng):
        ax.plot(xy[[p, q], 0], xy[[p, q], 1], color="grey", lw=0.5, alpha=0.5)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("texts on a TF-IDF + SVD plane (x = new row; grey: a sample's parents)", fontsize=9)
    handles, names = ax.get_legend_handles_labels()
    if len(names) <= 24:
        ax.legend(handles, names, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return _png(fig)


def _labels(a: Augmented) -> list:
    if a.label_col is None:
        return ["(unlabelled)"] * (len(a.originals) + len(a.new))
    return a.originals[a.label_col].tolist() + a.new[a.label_col].tolist()


def label_count_plot(a: Augmented) -> str | None:
    if a.label_col is None:
        return None
    labels = top_labels([str(l) for l in _labels(a)])
    counts = Counter((bucket, i >= len(a.originals)) for i, bucket in enumerate(labels.of))
    b = np.array([counts[s, False] for s in labels.shown])
    n = np.array([counts[s, True] for s in labels.shown])
    x = np.arange(len(labels.shown))  # positions, not names: two long labels may share a cut name
    fig, ax = _figure(max(4.0, 0.5 * len(x) + 2), 3.2)
    ax.bar(x, b, label="original", color="#4c72b0")
    ax.bar(x, n, bottom=b, label="new", color="#dd8452")
    slant = {"rotation": 45, "ha": "right", "rotation_mode": "anchor"} if len(x) > 6 else {}
    ax.set_xticks(x, [labels.name(s) for s in labels.shown], fontsize=8, **slant)
    ax.set_ylabel("rows")
    ax.set_title("label counts: before, and added", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def _float(value) -> float:
    """A number as any format wrote it (0.5 or "0.5"); anything else is NaN, never an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return np.nan
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return np.nan
    return number if np.isfinite(number) else np.nan


def _floats(values) -> np.ndarray:
    return np.array([_float(v) for v in values], dtype=float)


def histogram_plot(values: np.ndarray, title: str, xlabel: str, bins=20, range_=None) -> str | None:
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    fig, ax = _figure(4.4, 3.0)
    ax.hist(values, bins=bins, range=range_, color="#4c72b0")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("new rows")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def fidelity_plot(lam: np.ndarray, fid: np.ndarray, intrusion: np.ndarray) -> str | None:
    ok = np.isfinite(lam) & np.isfinite(fid)
    if not ok.any():
        return None
    fig, ax = _figure(4.4, 3.0)
    ax.scatter(lam[ok & ~intrusion], fid[ok & ~intrusion], s=10, alpha=0.6, color="#4c72b0", label="label of a parent")
    if (ok & intrusion).any():
        ax.scatter(lam[ok & intrusion], fid[ok & intrusion], s=14, marker="x", color="#c44e52", label="intrusion")
    ax.set_xlabel("λ (weight of parent a)")
    ax.set_ylabel("fidelity (cosine to target)")
    ax.set_title("fidelity against λ", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


# -- page -----------------------------------------------------------------------------------------------


def _e(value, limit: int = TEXT_CHARS) -> str:
    """A value from the file or the stats file as escaped HTML, cut to `limit` characters: every such value on
    the page goes through here, so the page does not grow with the length of a text or a column name. It is cut
    before it is escaped, so an entity is never split; no title attribute, which would carry it whole again."""
    if is_missing(value):
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return html.escape(short(text, limit))


def _fmt(value, digits=3) -> str:
    """A number to `digits` decimals; one of a million or more (a hostile file's fidelity of 1e300) in
    scientific notation, not as its 300 digits."""
    number = _float(value)
    if np.isnan(number):
        return ""
    return f"{number:.{digits}f}" if abs(number) < 1e6 else f"{number:.{digits}g}"


def intrusion_table(a: Augmented) -> str:
    """Parent labels (a + b) → the label written: agreement is green, manifold intrusion red. The commonest
    pairs and labels are named, the rest pooled, so a cell is red when any of its rows is an intrusion."""
    if a.label_col is None or not len(a.new):
        return "<p>No labels, or no new rows.</p>"
    pairs = [
        tuple(sorted({str(x), str(y)})) for x, y in zip(a.new["mixaug_parent_a_label"], a.new["mixaug_parent_b_label"])
    ]
    got = [str(l) for l in a.new[a.label_col]]
    by_pair, by_label = top_labels(pairs, "parent pairs"), top_labels(got)
    count, bad = Counter(zip(by_pair.of, by_label.of)), Counter()
    for cell, pair, label in zip(zip(by_pair.of, by_label.of), pairs, got):
        bad[cell] += label not in pair
    head = "".join(f"<th>{_e(by_label.name(c))}</th>" for c in by_label.shown)
    rows = []
    for r in by_pair.shown:
        cells = "".join(
            f'<td class="{"bad" if bad[r, c] else ("ok" if count[r, c] else "")}">{count[r, c] or ""}</td>'
            for c in by_label.shown
        )
        rows.append(f"<tr><th>{_e(by_pair.name(r))}</th>{cells}</tr>")
    return f'<table class="matrix"><tr><th>parents ↓ / label →</th>{head}</tr>{"".join(rows)}</table>'


def rejected_table(rejected: dict) -> str:
    """Rejections by reason, the most first: TOP_LABELS reasons named and the rest pooled in one row, so a
    stats file with many reasons does not grow the page."""
    if not rejected:
        return "<p>None rejected.</p>"
    reasons = sorted(rejected.items(), key=lambda kv: -np.nan_to_num(_float(kv[1]), nan=-np.inf))
    shown, rest = reasons[:TOP_LABELS], reasons[TOP_LABELS:]
    if rest:
        shown.append((f"({len(rest):,} other reasons)", int(np.nansum(_floats(v for _, v in rest)))))
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in shown)
    return f"<table><tr><th>reason</th><th>rows</th></tr>{rows}</table>"


def rows_table(a: Augmented, rows: pd.DataFrame) -> str:
    """New rows (at most SAMPLE_ROWS: the caller picks them) beside their parents, every text cut by `_e`."""
    head = "<tr><th>new row</th><th>label</th><th>λ</th><th>fidelity</th><th>parent a</th><th>parent b</th></tr>"
    body = []
    for _, r in rows.iterrows():
        pa, pb = r["mixaug_parent_a"], r["mixaug_parent_b"]
        label = _e(r[a.label_col], LABEL_CHARS) if a.label_col else ""
        flag = ' <span class="bad">intrusion</span>' if _truthy(r.get("mixaug_intrusion")) else ""
        body.append(
            f"<tr><td>{_e(r[a.text_col])}</td><td>{label}{flag}</td><td>{_fmt(r['mixaug_lambda'], 2)}</td>"
            f"<td>{_fmt(r['mixaug_fidelity'])}</td><td>{_e(a.parent_text.get(_key(pa), pa))}</td>"
            f"<td>{_e(a.parent_text.get(_key(pb), pb))}</td></tr>"
        )
    return f'<table class="rows">{head}{"".join(body)}</table>'


STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
.facts{display:flex;flex-wrap:wrap;gap:8px 22px;margin:10px 0} .facts div{min-width:120px}
.facts b{display:block;font-size:18px} .grid{display:flex;flex-wrap:wrap;gap:14px}
img{max-width:100%;border:1px solid #eee} table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 6px;vertical-align:top;text-align:left}
table.rows td:first-child{font-weight:600;max-width:320px} .ok{background:#e8f3e8} .bad{color:#b22;font-weight:600}
td.bad{background:#fbe3e3} .tabs input{display:none} .tabs label{display:inline-block;padding:6px 14px;
border:1px solid #ccc;border-bottom:none;cursor:pointer;background:#f6f6f6;margin-right:4px}
.tabs input:checked+label{background:#fff;font-weight:600} .tab{display:none;border-top:1px solid #ccc;padding-top:8px}
#t1:checked~.t1,#t2:checked~.t2{display:block} .note{color:#666;font-size:12px}
"""


def _plots(a: Augmented, lam, fid, conf, intrusion, seed: int) -> list:
    return [
        map_plot(a, seed),
        label_count_plot(a),
        histogram_plot(lam, "λ of the new rows", "λ", range_=(0, 1)),
        fidelity_plot(lam, fid, intrusion),
        histogram_plot(conf, "label confidence (classifier probability)", "confidence", range_=(0, 1)),
    ]


def render(a: Augmented, stats: dict | None = None, title: str = "mixaug report", seed: int = 0) -> str:
    """The whole page as one HTML string (images inline)."""
    stats = stats or {}
    lam = _floats(a.new["mixaug_lambda"]) if len(a.new) else np.array([])
    fid = _floats(a.new["mixaug_fidelity"]) if len(a.new) else np.array([])
    conf = _floats(a.new["mixaug_label_confidence"]) if len(a.new) else np.array([])
    intrusion = (
        np.array([_truthy(v) for v in a.new["mixaug_intrusion"]], dtype=bool) if len(a.new) else np.array([], bool)
    )
    facts = {
        "original rows": len(a.originals),
        "new rows": len(a.new),
        "mean fidelity": _fmt(np.nanmean(fid)) if np.isfinite(fid).any() else "–",
        "intrusion rate": _fmt(intrusion.mean()) if a.label_col and len(a.new) else "–",
        "mean λ": _fmt(np.nanmean(lam), 2) if np.isfinite(lam).any() else "–",
    }
    for key in ("pairing", "label_policy", "shortfall", "seconds"):
        if key in stats:
            facts[key.replace("_", " ")] = stats[key]
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False}):  # a label like "$x^$" is text, not TeX
        plots = _plots(a, lam, fid, conf, intrusion, seed)
    images = "".join(f'<img alt="plot" src="{p}">' for p in plots if p)
    rejected = stats.get("rejected")
    rejected_html = (
        rejected_table(rejected)
        if isinstance(rejected, dict)
        else '<p class="note">Pass the run\'s <code>--stats-json</code> file to see rejections.</p>'
    )
    new = a.new
    sample = new.sample(min(SAMPLE_ROWS, len(new)), random_state=seed) if len(new) else new
    worst = new.assign(_f=fid).sort_values("_f", kind="stable").head(SAMPLE_ROWS) if len(new) else new
    fact_html = "".join(f"<div>{html.escape(k)}<b>{_e(v)}</b></div>" for k, v in facts.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">Text column <code>{_e(a.text_col)}</code>, label column
<code>{_e(a.label_col or "(none)")}</code>. Made by <code>mixaug report</code>; no model was loaded.</p>
<div class="facts">{fact_html}</div>
<h2>Plots</h2><div class="grid">{images or "<p>No new rows to plot.</p>"}</div>
<h2>Manifold intrusion: parent labels → label written</h2>{intrusion_table(a)}
<h2>Rejected candidates</h2>{rejected_html}
<h2>New rows beside their parents</h2>
<div class="tabs"><input type="radio" name="t" id="t1" checked><label for="t1">a sample of {len(sample)}</label>
<input type="radio" name="t" id="t2"><label for="t2">lowest fidelity first</label>
<div class="tab t1">{rows_table(a, sample)}</div><div class="tab t2">{rows_table(a, worst)}</div></div>
<script>
// For checks and for people: how many plots rendered.
window.addEventListener("load", function () {{
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute("data-plots-rendered", imgs.filter(function (i) {{ return i.naturalWidth > 0; }}).length);
}});
</script>
</body></html>
"""


def report(
    path: str | Path,
    fmt: str | None = None,
    stats_path: str | Path | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    seed: int = 0,
) -> str:
    """HTML of the report for an augmented file (and optionally its stats JSON)."""
    stats = read_stats(stats_path)
    a = split(load_augmented(path, fmt), text_column, label_column, id_column, stats)
    return render(a, stats, title=f"mixaug report: {Path(str(path)).name}", seed=seed)


def default_report_path(input: str | Path) -> str:
    """Where `mixaug report INPUT` writes without -o: INPUT's name, less its data suffixes, + .report.html."""
    if str(input) == "-":
        raise MixaugError("reading stdin: pass -o/--output for the report")
    name = Path(input).name
    for suffix in (".gz", ".jsonl", ".json", ".csv", ".tsv", ".parquet"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return str(Path(input).with_name(name + ".report.html"))


def report_file(
    input: str | Path,
    output: str | Path | None = None,
    fmt: str | None = None,
    stats_path: str | Path | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    id_column: str | None = None,
    overwrite: bool = False,
) -> tuple[str, int]:
    """Write the report of an augmented file to OUTPUT ('-': stdout; None: default_report_path), the path
    checked before anything is read; returns (where it went, its size in bytes)."""
    from .data.write import check_output_path, write_bytes_atomic, write_stdout

    output = str(output) if output is not None else default_report_path(input)
    inputs = [input] + ([stats_path] if stats_path else [])
    check_output_path(output, overwrite, inputs=inputs, what="report")
    page = report(input, fmt, stats_path, text_column, label_column, id_column).encode()
    if output == "-":
        write_stdout(page)
    else:
        write_bytes_atomic(output, page)
    return output, len(page)
