"""What `mixaug eval` writes into its --out folder: results.json, summary.json, the plots and report.md
(every data text in it escaped by md_text)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


# -- outputs -------------------------------------------------------------------------------------
def write_outputs(results: dict, out: Path) -> None:
    """The files of the --out folder, named by mixaug: a link planted at one is replaced, not written through."""
    from ..data.write import write_named

    out.mkdir(parents=True, exist_ok=True)
    write_named(out / "results.json", (json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n").encode())
    write_named(out / "summary.json", (json.dumps(results["summary"], indent=2, default=str) + "\n").encode())
    plots = _plots(results, out)
    write_named(out / "report.md", render_report(results, plots).encode())


def _save_plot(fig, path: Path) -> None:
    from ..data.write import named_file

    with named_file(path) as fh:
        fig.savefig(fh, format="png", dpi=110)


def _plots(results: dict, out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    summary = pd.DataFrame(results["summary"])
    if not summary.empty:
        fig, ax = plt.subplots(figsize=(9, 4))
        if summary.get("classifier", pd.Series(dtype=object)).nunique() > 1:  # one bar per classifier/method
            summary = summary.assign(method=summary["classifier"] + "/" + summary["method"])
        shots = list(dict.fromkeys(summary["shots"].astype(str)))
        methods = list(dict.fromkeys(summary["method"]))
        width = 0.8 / max(1, len(methods))
        for j, m in enumerate(methods):
            sub = summary[summary.method == m].set_index(summary[summary.method == m]["shots"].astype(str))
            xs = [i + j * width for i, s in enumerate(shots) if s in sub.index]
            ax.bar(
                xs,
                [sub.loc[s, "accuracy_mean"] for s in shots if s in sub.index],
                width,
                yerr=[sub.loc[s, "accuracy_std"] for s in shots if s in sub.index],
                label=m,
                capsize=2,
            )
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(shots))], [f"shots={s}" for s in shots])
        ax.set_ylabel("test accuracy")
        ax.set_ylim(max(0, summary.accuracy_mean.min() - 0.15), min(1, summary.accuracy_mean.max() + 0.08))
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        _save_plot(fig, out / "accuracy.png")
        plt.close(fig)
        made.append("accuracy.png")
    intr = pd.DataFrame(results["intrusion"])
    if not intr.empty:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if "method" not in intr:  # a results.json from before the table was per arm
            intr["method"] = "mixaug"
        for (method, pairing), grp in intr[intr.lambda_bucket != "all"].groupby(["method", "pairing"]):
            ax.plot(grp.lambda_bucket, grp.intrusion_rate, marker="o", label=f"{method} ({pairing})")
        ax.set_xlabel("λ bucket (weight of parent a)")
        ax.set_ylabel("intrusion rate")
        ax.legend()
        fig.tight_layout()
        _save_plot(fig, out / "intrusion.png")
        plt.close(fig)
        made.append("intrusion.png")
    ctrl = results.get("controllability") or {}
    if ctrl.get("curve"):
        c = pd.DataFrame(ctrl["curve"])
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.errorbar(c["lambda"], c["margin_mean"], yerr=c["margin_std"], marker="o", capsize=3)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("λ")
        ax.set_ylabel("cos(decoded, a) − cos(decoded, b)")
        ax.set_title(f"Spearman ρ = {ctrl['spearman']}")
        fig.tight_layout()
        _save_plot(fig, out / "controllability.png")
        plt.close(fig)
        made.append("controllability.png")
    return made


def _speed_ratio(rates: dict) -> str:
    if "mixaug" in rates and "paraphrase" in rates and rates["paraphrase"]:
        return (
            f"mixaug (default settings) makes {rates['mixaug']} new rows/s vs paraphrase {rates['paraphrase']}: "
            f"ratio {rates['mixaug'] / rates['paraphrase']:.2f}x, same rows, same run.\n"
        )
    return ""


def _ceiling_line(speed: dict) -> str:
    if speed.get("decode_ceiling_tokens_per_s") is None:
        return ""
    return (
        f"Decode engine ({speed['precision']}, {speed['batch_size']} rows at once): mixaug's decoding kept "
        f"{speed['mixaug_useful_tokens_per_s']} tokens/s ({speed['mixaug_decode_rows']} rows, "
        f"{speed['mixaug_mean_tokens_per_row']} tokens each on average); a plain KV-cached greedy loop over one "
        f"full batch of rows that long, measured in the same run: {speed['decode_ceiling_tokens_per_s']} tokens/s "
        f"(ratio {speed['useful_to_ceiling']}).\n"
    )


# What md_text changes: HTML's three (no tag, so no <img> that fetches); every character of Markdown's inline
# syntax (links, images, code, emphasis, table cells, headings) behind a backslash; line breaks (a table row is
# one line) as ↵; other control characters (C0, C1) and bidi overrides as \xNN, so a text cannot reorder or hide
# what is around it.
_MD_LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_MD_HIDDEN = [*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_MD_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in _MD_HIDDEN},
    **{ord(c): "↵" for c in _MD_LINE_BREAKS},
    ord("\t"): " ",
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    **{ord(c): "\\" + c for c in "\\`*_~[]()!|#{}"},
}


def md_text(value) -> str:
    """Text from the data (a TEST text, its reconstruction, a file name) as inert Markdown: shown as the
    characters it holds, never as markup a previewer acts on (an image or HTML tag it fetches, a link)."""
    return str(value).replace("\r\n", "\n").translate(_MD_ESCAPES)


def _md_table(rows: list[dict], cols: list[str]) -> str:
    """A Markdown table of mixaug's own columns; every cell goes through md_text."""
    if not rows:
        return "_(none)_\n"
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("" if r.get(c) is None else md_text(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


CLASSIFIER_WORDS = {
    "logreg": "logistic regression on frozen encoder embeddings",
    "tfidf": "TF-IDF word 1–2-grams + logistic regression",
    "finetune": "the encoder fine-tuned with a linear head, the same number of optimizer steps for every method",
}


def _classifier_words(cfg: dict) -> str:
    names = cfg.get("classifiers") or [cfg.get("classifier", "logreg")]
    return "; ".join(f"{c} ({CLASSIFIER_WORDS[c]})" for c in names)


def render_report(results: dict, plots: list[str]) -> str:
    cfg = results["config"]
    parts = [
        "# mixaug eval report\n",
        f"TRAIN {md_text(cfg['train'])} ({results['train_rows']} rows), TEST {md_text(cfg['test'])} "
        f"({results['test_rows']} rows), "
        f"{len(results['classes'])} classes; seeds {cfg['seeds']}; classifiers: {_classifier_words(cfg)}; "
        f"new rows per run = min({cfg['max_new_rows']}, {cfg['ratio']} x originals).\n",
        "## 1-2. Downstream accuracy by method\n",
        _md_table(
            results["summary"],
            [
                "classifier",
                "method",
                "shots",
                "accuracy_mean",
                "accuracy_std",
                "macro_f1_mean",
                "macro_f1_std",
                "p_value_vs_none",
                "macro_f1_p_vs_none",
                "rare_recall_mean",
                "new_rows_per_s",
            ],
        ),
        f"EDA ops that ran: {', '.join(results['eda_ops'])}"
        + (
            " (synonyms from WordNet 3.0).\n"
            if "synonym_replacement" in results["eda_ops"]
            else " (no WordNet here).\n"
        ),
        "## 3. Inversion fidelity and controllability\n",
        _md_table(
            [{k: v for k, v in results["fidelity"].items() if k != "examples"}],
            ["n", "cosine", "token_f1", "word_f1", "bleu", "exact"],
        ),
        _md_table(results["fidelity"].get("examples", []), ["original", "reconstruction"]),
        f"Controllability (cos to a − cos to b over λ, {results['controllability'].get('pairs', 0)} pairs): "
        f"Spearman ρ = {results['controllability'].get('spearman')}\n",
        _md_table(results["controllability"].get("curve", []), ["lambda", "margin_mean", "margin_std"]),
        "## 4. Manifold intrusion (hard label neither parent's)\n",
        _md_table(
            results["intrusion"], ["method", "pairing", "lambda_bucket", "n", "intrusion_rate", "label_confidence"]
        ),
        "## 5. Speed\n",
        _md_table(
            [{"method": k, "new_rows_per_s": v} for k, v in results["speed"]["new_rows_per_s"].items()],
            ["method", "new_rows_per_s"],
        ),
        (
            "mixaug:parent and mixaug:soft label the sentences already decoded for the same plan under the hard "
            "policy (same pairs, same λ), so their rows/s measure labelling only; the decoding cost is in `mixaug`.\n"
            if "mixaug" in results["config"].get("methods", [])
            else ""
        ),
        f"Encoder: {results['speed']['encode_sentences_per_s']} sentences/s; LM decode (inversion, batch "
        f"{results['fidelity'].get('batch_size')}): {results['fidelity'].get('decode_tokens_per_s')} tokens/s; "
        f"peak RSS {results['speed']['peak_rss_mb']} MB.\n",
        _ceiling_line(results["speed"]),
        _speed_ratio(results["speed"]["new_rows_per_s"]),
    ]
    parts += [f"![{p}]({p})\n" for p in plots]
    return "\n".join(parts)
