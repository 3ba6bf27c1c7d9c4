"""What lexical anchoring (--anchor) does to the rows, arm by arm, in one process on the same originals.

For each arm (β[:weighting], 0 = today's decoding) `augment` makes the same number of new rows from the same
originals and seed, decode cache off, one arm after another. Reported per arm:

- fidelity: cosine of the row's re-encoding to its mixed target (mixaug_fidelity);
- parent-word share: of the row's content words (not in scikit-learn's English stop list), the share
  found in either parent;
- near-copies: rows whose word-F1 to the closer parent is >= 0.8;
- non-words: words of a row that no dictionary holds — not a WordNet lemma (after stripping common
  endings), not in any text of bench/data, not a number — as a share of the rows' words, and the share of
  rows with one;
- intrusion rate (labelled data), distinct rows, new rows/s (augment's wall time, models already loaded).

    python scripts/anchor_bench.py bench/data/news.jsonl --rows 50 --new 100 --arms 0,3,6 --out build/anchor.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("MIXAUG_NO_DECODE_CACHE", "1")

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from mixaug import augment
from mixaug.evaluation.baselines import wordnet_dir
from mixaug.metrics import token_f1, words

ENDINGS = ("'s", "s", "es", "ed", "d", "ing", "ly", "er", "est", "ies", "ied")


def dictionary() -> set[str]:
    vocab: set[str] = set(ENGLISH_STOP_WORDS)
    folder = wordnet_dir()
    if folder is not None:
        for part in ("noun", "verb", "adj", "adv"):
            for line in (folder / f"index.{part}").read_text(errors="replace").splitlines():
                if line and not line.startswith(" "):
                    vocab.update(line.split()[0].lower().split("_"))
            exc = folder / f"{part}.exc"
            if exc.exists():
                for line in exc.read_text(errors="replace").splitlines():
                    vocab.update(w.lower() for w in line.split())
    for path in glob.glob("bench/data/*.jsonl"):
        for line in Path(path).read_text().splitlines():
            vocab.update(words(json.loads(line)["text"]))
    return vocab


def known(word: str, vocab: set[str]) -> bool:
    if word in vocab or re.fullmatch(r"[\d.,]+(st|nd|rd|th|s|m|k|bn)?", word):
        return True
    for end in ENDINGS:
        if word.endswith(end) and len(word) > len(end) + 2:
            stem = word[: -len(end)]
            if stem in vocab or stem + "e" in vocab or stem + "y" in vocab or stem[:-1] in vocab:
                return True
    return False


def content(text: str) -> list[str]:
    return [w for w in words(text) if w not in ENGLISH_STOP_WORDS and not w.isdigit()]


def measure(out: pd.DataFrame, texts: dict, vocab: set[str], seconds: float) -> dict:
    share, copies, nonword_words, nonword_rows, total_words = [], 0, 0, 0, 0
    for t, a, b in zip(out["text"], out["mixaug_parent_a"], out["mixaug_parent_b"]):
        pa, pb = texts[a], texts[b]
        cw = content(t)
        parent = set(words(pa)) | set(words(pb))
        if cw:
            share.append(np.mean([w in parent for w in cw]))
        copies += max(token_f1(pa, t, words), token_f1(pb, t, words)) >= 0.8
        ws = words(t)
        bad = [w for w in ws if not known(w, vocab) and w not in parent]
        total_words += len(ws)
        nonword_words += len(bad)
        nonword_rows += bool(bad)
    n = len(out)
    result = {
        "rows": n,
        "fidelity": round(float(out["mixaug_fidelity"].mean()), 4),
        "fidelity_se": round(float(out["mixaug_fidelity"].std(ddof=1) / np.sqrt(n)), 4),
        "parent_word_share": round(float(np.mean(share)), 4),
        "near_copy_rate": round(copies / n, 4),
        "nonword_rate_words": round(nonword_words / max(total_words, 1), 4),
        "nonword_rate_rows": round(nonword_rows / n, 4),
        "distinct_rows": round(out["text"].nunique() / n, 4),
        "mean_words": round(float(np.mean([len(words(t)) for t in out["text"]])), 2),
        "new_rows_per_s": round(n / seconds, 2),
    }
    if "mixaug_intrusion" in out and out["mixaug_intrusion"].notna().any():
        result["intrusion_rate"] = round(float(out["mixaug_intrusion"].astype(float).mean()), 4)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="JSONL with text (and label, if labelled)")
    ap.add_argument("--rows", type=int, default=50, help="originals: the first N rows (10 per class if --shots)")
    ap.add_argument("--shots", type=int, default=None, help="originals: this many rows per class (seeded)")
    ap.add_argument("--new", type=int, default=100)
    ap.add_argument("--arms", default="0,3,6", help="comma list of β[:salience|idf]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=4, help="rows printed per arm")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    df = pd.read_json(args.data, lines=True)
    if args.shots and "label" in df:
        df = df.groupby("label", group_keys=False).sample(n=args.shots, random_state=args.seed)
    else:
        df = df.head(args.rows)
    df = df.reset_index(drop=True)
    labelled = "label" in df
    texts = dict(enumerate(df["text"]))
    vocab = dictionary()
    report = {"data": args.data, "originals": len(df), "new": args.new, "seed": args.seed, "arms": {}}
    augment(df.head(4), num_augmented=2, label_column="label" if labelled else None, only_new=True)  # load once
    for arm in args.arms.split(","):
        beta, _, weighting = arm.partition(":")
        started = time.perf_counter()
        out = augment(
            df,
            text_column="text",
            label_column="label" if labelled else None,
            num_augmented=args.new,
            seed=args.seed,
            only_new=True,
            anchor=float(beta),
            anchor_weights=weighting or "salience",
        )
        seconds = time.perf_counter() - started
        report["arms"][arm] = m = measure(out, texts, vocab, seconds)
        m["samples"] = out["text"].head(args.samples).tolist()
        print(arm, {k: v for k, v in m.items() if k != "samples"}, file=sys.stderr, flush=True)
        for t in m["samples"]:
            print("   ", t, file=sys.stderr, flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
