"""Augmentation baselines `mixaug eval` compares against: EDA, embedding-space mixup, LM paraphrase."""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

EDA_OPS = ("synonym_replacement", "random_insertion", "random_swap", "random_deletion")
# Without WordNet the synonym ops cannot run: insertion then inserts a word of the same sentence.
EDA_OPS_NO_SYNONYMS = ("random_swap", "random_deletion", "random_insertion_same_sentence")
WORDNET_DIRS = ("/usr/share/wordnet",)  # Debian's wordnet-base (WordNet 3.0 database files)
# EDA's stop words (Wei & Zou's list, abridged): never replaced by a synonym
STOP_WORDS = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is are
    was were be been being have has had having do does did doing a an the and but if or because as until while
    of at by for with about against between into through during before after above below to from up down in
    out on off over under again further then once here there when where why how all any both each few more
    most other some such no nor not only own same so than too very s t can will just don should now""".split()
)


def wordnet_dir() -> Path | None:
    """Where WordNet's data files are: $MIXAUG_WORDNET, else Debian's wordnet-base; None if neither."""
    for folder in filter(None, (os.environ.get("MIXAUG_WORDNET"), *WORDNET_DIRS)):
        if all((Path(folder) / f"data.{pos}").is_file() for pos in ("noun", "verb", "adj", "adv")):
            return Path(folder)
    return None


@functools.lru_cache(maxsize=4)
def wordnet_synonyms(folder: Path | None = None) -> dict[str, tuple[str, ...]]:
    """word -> its WordNet synonyms (every lemma of every synset holding it), sorted; {} without WordNet.
    Read from the database files themselves: `offset lex_filenum ss_type w_cnt(hex) word lex_id ...`."""
    folder = folder or wordnet_dir()
    if folder is None:
        return {}
    synonyms: dict[str, set[str]] = {}
    for pos in ("noun", "verb", "adj", "adv"):
        with open(folder / f"data.{pos}", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("  "):  # the licence header
                    continue
                fields = line.split(" ", 4 + 2 * 64)
                count = int(fields[3], 16)
                words = {fields[4 + 2 * k].split("(")[0].replace("_", " ").lower() for k in range(count)}
                for word in words:
                    synonyms.setdefault(word, set()).update(words - {word})
    return {w: tuple(sorted(s)) for w, s in synonyms.items() if s}


def eda_ops(synonyms: dict | None = None) -> tuple[str, ...]:
    return EDA_OPS if (synonyms if synonyms is not None else wordnet_synonyms()) else EDA_OPS_NO_SYNONYMS


def eda(
    texts: Sequence[str], labels: Sequence, n: int, seed: int, alpha: float = 0.1, synonyms: dict | None = None
) -> tuple[list[str], list]:
    """Easy Data Augmentation (Wei & Zou, 2019): one random op per new row on ~alpha of the words (at least
    one): synonym replacement (WordNet; stop words kept), random insertion of a synonym of a word of the
    sentence, random swap, random deletion. Without WordNet the ops are those of EDA_OPS_NO_SYNONYMS."""
    synonyms = wordnet_synonyms() if synonyms is None else synonyms
    ops = eda_ops(synonyms)
    rng = random.Random(seed)
    out_t, out_l = [], []
    for _ in range(n):
        i = rng.randrange(len(texts))
        words = texts[i].split()
        k = max(1, int(alpha * len(words)))
        op = rng.choice(ops)
        if op == "synonym_replacement":
            spots = [j for j, w in enumerate(words) if _synonyms_of(w, synonyms)]
            for j in rng.sample(spots, min(k, len(spots))):
                words[j] = rng.choice(_synonyms_of(words[j], synonyms))
        elif op == "random_insertion":
            for _ in range(k):
                options = [w for w in words if _synonyms_of(w, synonyms)]
                if options:
                    words.insert(rng.randrange(len(words) + 1), rng.choice(_synonyms_of(rng.choice(options), synonyms)))
        elif op == "random_swap" and len(words) > 1:
            for _ in range(k):
                a, b = rng.sample(range(len(words)), 2)
                words[a], words[b] = words[b], words[a]
        elif op == "random_deletion" and len(words) > 1:
            keep = [w for w in words if rng.random() > alpha] or [rng.choice(words)]
            words = keep
        elif op == "random_insertion_same_sentence":
            for _ in range(k):
                words.insert(rng.randrange(len(words) + 1), rng.choice(words))
        out_t.append(" ".join(words))
        out_l.append(labels[i])
    return out_t, out_l


def _synonyms_of(word: str, synonyms: dict) -> tuple[str, ...]:
    key = word.lower().strip(".,;:!?\"'()[]")
    return () if key in STOP_WORDS else synonyms.get(key, ())


def embed_mixup(size: int, n: int, seed: int, alpha: float = 0.4):
    """Classic sentence-level mixup in embedding space: random pairs (a, b) and λ ~ Beta(α, α). The
    classifier trains on λ·emb(a) + (1−λ)·emb(b) with the soft label; nothing readable is produced."""
    rng = np.random.default_rng([seed, 7])
    return rng.integers(0, size, n), rng.integers(0, size, n), rng.beta(alpha, alpha, n)


PARAPHRASE_PROMPT = "Paraphrase this sentence. Reply with the paraphrase only.\nSentence: {text}"


def paraphrase(
    texts: Sequence[str],
    labels: Sequence,
    n: int,
    seed: int,
    lm,
    tokenizer,
    batch_size: int = 16,
    max_new_tokens: int = 48,
) -> tuple[list[str], list]:
    """Prompt the instruction LM to paraphrase randomly chosen rows (greedy); the label is copied."""
    import torch

    rng = random.Random(seed)
    picks = [rng.randrange(len(texts)) for _ in range(n)]
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out: list[str] = []
    for start in range(0, n, batch_size):
        chunk = picks[start : start + batch_size]
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": PARAPHRASE_PROMPT.format(text=texts[i])}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for i in chunk
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(lm.device)
        with torch.inference_mode():
            gen = lm.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                repetition_penalty=1.1,
            )
        for row in gen[:, enc["input_ids"].shape[1] :]:
            text = tokenizer.decode(row, skip_special_tokens=True).strip().splitlines()
            out.append(" ".join(text[0].split()) if text else "")
    return out, [labels[i] for i in picks]
